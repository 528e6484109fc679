package registrar

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// newInproc returns a registrar with a controllable clock, for tests that
// call its handlers directly.
func newInproc(t *testing.T, opts Options) (*Registrar, *time.Time) {
	t.Helper()
	opts.Log = testLogger()
	r := New(func() Directory { return testAccounts }, opts)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.now = func() time.Time { return now }
	return r, &now
}

// challengeFor gets a 401 for req (which must carry no credentials) and
// returns its nonce.
func challengeFor(t *testing.T, r *Registrar, req *sip.Request) string {
	t.Helper()
	tx := &fakeTx{}
	r.HandleRegister(req, tx)
	return challengeOf(t, tx.last())["nonce"]
}

// cseqs gives in-process requests rising CSeq numbers, as a phone would.
var cseqs atomic.Uint32

func withAuth(req *sip.Request, name, value string) *sip.Request {
	req = req.Clone()
	req.RemoveHeader("Authorization")
	req.RemoveHeader("Proxy-Authorization")
	req.AppendHeader(sip.NewHeader(name, value))
	req.CSeq().SeqNo = 100 + cseqs.Add(1)
	return req
}

func TestRegisterMalformed(t *testing.T) {
	r, _ := newInproc(t, Options{})
	contact := func(v string) sip.Header { return sip.NewHeader("Contact", v) }
	for _, tc := range []struct {
		name   string
		req    *sip.Request
		reason string // substring of the 400 reason phrase
	}{
		{"no To", func() *sip.Request { q := inproc(sip.REGISTER, "200"); q.RemoveHeader("To"); return q }(), "To"},
		{"To without user", func() *sip.Request {
			q := inproc(sip.REGISTER, "200")
			q.To().Address.User = ""
			return q
		}(), "To URI"},
		{"Contact without host", inproc(sip.REGISTER, "200", contact("<sip:200@>")), "Contact"},
		{"Contact not sip", inproc(sip.REGISTER, "200", contact("<mailto:a@b.c>")), "Contact"},
		{"Contact garbage", inproc(sip.REGISTER, "200", contact("<<<")), "Contact"},
		{"bad expires param", inproc(sip.REGISTER, "200", contact("<sip:200@192.0.2.10>;expires=soon")), "expires"},
		{"bad Expires header", inproc(sip.REGISTER, "200", contact("<sip:200@192.0.2.10>"), sip.NewHeader("Expires", "-1")), "Expires"},
		{"wildcard without Expires", inproc(sip.REGISTER, "200", contact("*")), "*"},
		{"wildcard with others", inproc(sip.REGISTER, "200", contact("*"), contact("<sip:200@192.0.2.10>"), sip.NewHeader("Expires", "0")), "*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := &fakeTx{}
			r.HandleRegister(tc.req, tx)
			res := tx.last()
			if res == nil || res.StatusCode != sip.StatusBadRequest || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("want 400 mentioning %q, got %v", tc.reason, res)
			}
		})
	}
}

func TestAuthenticateProxyAuthorizationAndRFC2069(t *testing.T) {
	r, _ := newInproc(t, Options{})
	invite := inproc(sip.INVITE, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"))
	tx := &fakeTx{}
	if _, ok := r.Authenticate(invite, tx); ok {
		t.Fatal("no credentials accepted")
	}
	res := tx.last()
	if res.StatusCode != sip.StatusUnauthorized || res.GetHeader("Proxy-Authenticate") != nil {
		t.Fatalf("want a 401 challenge, got %v", res)
	}
	nonce := challengeOf(t, res)["nonce"]
	uri := invite.Recipient.Addr()

	// Proxy-Authorization (a client answering 407-style) with qop.
	req := withAuth(invite, "Proxy-Authorization", digestAnswer("200", testDomain, "secret200", "INVITE", uri, nonce, 1, "x"))
	id, ok := r.Authenticate(req, &fakeTx{})
	if !ok || id != (Identity{Customer: "acme", Account: "200", Domain: testDomain}) {
		t.Fatalf("Proxy-Authorization: %v %+v", ok, id)
	}

	// RFC 2069 (no qop, no nc): accepted once per nonce.
	nonce = challengeFor(t, r, inproc(sip.REGISTER, "200"))
	req = withAuth(invite, "Authorization", digestAnswer("200", testDomain, "secret200", "INVITE", uri, nonce, 0, ""))
	if _, ok := r.Authenticate(req, &fakeTx{}); !ok {
		t.Fatal("RFC 2069 credentials refused")
	}
	tx = &fakeTx{}
	if _, ok := r.Authenticate(withAuth(req, "Authorization", req.GetHeader("Authorization").Value()), tx); ok {
		t.Fatal("RFC 2069 nonce reused")
	}
	if challengeOf(t, tx.last())["stale"] != "true" {
		t.Fatal("reused RFC 2069 nonce: want stale challenge")
	}

	// A digest for REGISTER does not authenticate an INVITE (method is hashed).
	nonce = challengeFor(t, r, inproc(sip.REGISTER, "200"))
	req = withAuth(invite, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", uri, nonce, 1, "x"))
	tx = &fakeTx{}
	if _, ok := r.Authenticate(req, tx); ok || tx.last().StatusCode != sip.StatusForbidden {
		t.Fatalf("cross-method digest: %v", tx.last())
	}
}

func TestAuthenticateEdgeCases(t *testing.T) {
	var failures []string
	var mu sync.Mutex
	r, now := newInproc(t, Options{NonceTTL: 10 * time.Second, MaxNonces: 2, OnAuthFailure: func(reason string) {
		mu.Lock()
		failures = append(failures, reason)
		mu.Unlock()
	}})
	reg := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"))
	uri := reg.Recipient.Addr()
	answer := func(nonce string, nc uint32) *sip.Request {
		return withAuth(reg, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", uri, nonce, nc, "x"))
	}
	status := func(req *sip.Request) (int, map[string]string) {
		tx := &fakeTx{}
		r.HandleRegister(req, tx)
		res := tx.last()
		if res.StatusCode == sip.StatusUnauthorized {
			return res.StatusCode, challengeOf(t, res)
		}
		return res.StatusCode, nil
	}

	// Stale by the clock: right digest gets stale=true.
	nonce := challengeFor(t, r, reg)
	*now = now.Add(11 * time.Second)
	if code, chal := status(answer(nonce, 1)); code != 401 || chal["stale"] != "true" {
		t.Fatalf("stale: %d %v", code, chal)
	}

	// Nonce table: only MaxNonces nonces are tracked at once.
	n1, n2, n3 := challengeFor(t, r, reg), challengeFor(t, r, reg), challengeFor(t, r, reg)
	for _, n := range []string{n1, n2} {
		if code, _ := status(answer(n, 1)); code != 200 {
			t.Fatalf("nonce %s: %d", n, code)
		}
	}
	if code, chal := status(answer(n3, 1)); code != 401 || chal["stale"] != "true" {
		t.Fatalf("table full: %d %v", code, chal)
	}
	*now = now.Add(11 * time.Second) // n1, n2 expire; their counters can go
	n4 := challengeFor(t, r, reg)
	if code, _ := status(answer(n4, 1)); code != 200 {
		t.Fatalf("after expiry the table has room: %d", code)
	}

	// Unsupported algorithm: offered MD5 and SHA-256 again.
	n5 := challengeFor(t, r, reg)
	sha := strings.Replace(answer(n5, 1).GetHeader("Authorization").Value(), "algorithm=MD5", "algorithm=SHA-512", 1)
	if code, _ := status(withAuth(reg, "Authorization", sha)); code != 401 {
		t.Fatalf("SHA-512: %d", code)
	}
	// Malformed credentials: 400.
	for _, v := range []string{
		`Digest username="200", realm="pbx.test", nonce="` + n5 + `", uri="sip:pbx.test"`,                                                        // no response
		`Digest username="200", realm="pbx.test", nonce="` + n5 + `", uri="sip:pbx.test", response="00112233445566778899aabbccddeeff", qop=auth`, // no nc
		`Digest username="200", realm="pbx.test", nonce="` + n5 + `", uri="sip:pbx.test", response="00112233445566778899aabbccddeeff", qop=auth, nc=zz, cnonce="a"`,
	} {
		if code, _ := status(withAuth(reg, "Authorization", v)); code != 400 {
			t.Fatalf("%s: %d", v, code)
		}
	}
	// Credentials for another realm, unparsable or Basic: ignored, so challenged.
	for _, v := range []string{
		strings.Replace(answer(n5, 1).GetHeader("Authorization").Value(), `realm="pbx.test"`, `realm="other"`, 1),
		`Basic MjAwOnNlY3JldDIwMA==`,
		`Digest username="200`,
	} {
		if code, chal := status(withAuth(reg, "Authorization", v)); code != 401 || chal["stale"] != "" {
			t.Fatalf("%s: %d %v", v, code, chal)
		}
	}

	// No directory: 503.
	r.dir = func() Directory { return nil }
	if code, _ := status(answer(n5, 1)); code != 503 {
		t.Fatalf("no directory: %d", code)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{ReasonStaleNonce, ReasonNonceTableFull, ReasonUnsupported,
		ReasonMalformed, ReasonMalformed, ReasonMalformed, ReasonNoDirectory}
	if fmt.Sprint(failures) != fmt.Sprint(want) {
		t.Fatalf("failures %v, want %v", failures, want)
	}
}

func TestRegisterOutOfOrderAndDirectorySwap(t *testing.T) {
	r, _ := newInproc(t, Options{})
	reg := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"))
	uri := reg.Recipient.Addr()
	nonce := challengeFor(t, r, reg)
	req := withAuth(reg, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", uri, nonce, 1, "x"))
	req.CSeq().SeqNo = 10
	tx := &fakeTx{}
	r.HandleRegister(req, tx)
	if tx.last().StatusCode != 200 {
		t.Fatalf("register: %v", tx.last())
	}
	// Same Call-ID, lower CSeq: refused and nothing changes.
	req = withAuth(reg, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", uri, nonce, 2, "x"))
	req.CSeq().SeqNo = 9
	r.HandleRegister(req, tx)
	if tx.last().StatusCode != 400 || r.Contacts("acme", "200")[0].CSeq != 10 {
		t.Fatalf("out of order: %v", tx.last())
	}

	// The directory is read per request: a new password applies at once.
	r.dir = func() Directory { return testDir{"200@" + testDomain: "changed"} }
	req = withAuth(reg, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", uri, nonce, 3, "x"))
	req.CSeq().SeqNo = 11
	r.HandleRegister(req, tx)
	if tx.last().StatusCode != 403 {
		t.Fatalf("old password after swap: %v", tx.last())
	}
}

func TestRunExpiresInProcess(t *testing.T) {
	// Expiry in-process: Run wakes for a new earliest binding and removes it.
	r := New(func() Directory { return testAccounts }, Options{Log: testLogger(), MinExpires: time.Second, MaxExpires: time.Second})
	changes := make(chan []Binding, 10)
	r.opts.OnChange = func(_, _ string, c []Binding) { changes <- c }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	reg := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"))
	nonce := challengeFor(t, r, reg)
	tx := &fakeTx{}
	r.HandleRegister(withAuth(reg, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", reg.Recipient.Addr(), nonce, 1, "x")), tx)
	if tx.last().StatusCode != 200 {
		t.Fatalf("register: %v", tx.last())
	}
	if c := <-changes; len(c) != 1 {
		t.Fatalf("first change %v", c)
	}
	select {
	case c := <-changes:
		if len(c) != 0 {
			t.Fatalf("expiry change %v", c)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("binding did not expire")
	}
}

func TestParseAuthorization(t *testing.T) {
	for _, tc := range []struct {
		in     string
		scheme string
		params map[string]string
		bad    bool
	}{
		{in: `Digest username="200", realm="pbx.test", nonce="abc", uri="sip:pbx.test", response="0123", algorithm=MD5, cnonce="c", qop=auth, nc=00000001`,
			scheme: "Digest", params: map[string]string{"username": "200", "realm": "pbx.test", "nonce": "abc", "uri": "sip:pbx.test",
				"response": "0123", "algorithm": "MD5", "cnonce": "c", "qop": "auth", "nc": "00000001"}},
		{in: "Digest  USERNAME = \"a,b\" ,\t,realm=\"x\\\"y\\\\z\",,", scheme: "Digest",
			params: map[string]string{"username": "a,b", "realm": `x"y\z`}},
		{in: `digest qop="auth,auth-int"`, scheme: "digest", params: map[string]string{"qop": "auth,auth-int"}},
		{in: `Digest username=""`, scheme: "Digest", params: map[string]string{"username": ""}},
		{in: "", bad: true},
		{in: "Digest", bad: true},
		{in: "Digest ,", bad: true},
		{in: `Digest username="unterminated`, bad: true},
		{in: `Digest username="x\`, bad: true},
		{in: `Digest username`, bad: true},
		{in: `Digest username=`, bad: true},
		{in: `Digest username="a" realm="b"`, bad: true},
		{in: `Digest username="a", username="b"`, bad: true},
		{in: `Digest a=b=c`, bad: true},
		{in: `"Digest" a=b`, bad: true},
		{in: `Basic dXNlcjpwYXNz`, bad: true},
		{in: `Digest a=b, c`, bad: true},
		{in: "Digest " + strings.Repeat("a=b,", 40), bad: true}, // duplicates
	} {
		a, err := parseAuthorization(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: want error, got %+v", tc.in, a)
			}
			continue
		}
		if err != nil || a.scheme != tc.scheme || !maps.Equal(a.params, tc.params) {
			t.Errorf("%q: got %+v, %v", tc.in, a, err)
		}
	}
	many := "Digest"
	for i := range maxAuthParams + 1 {
		many += fmt.Sprintf(" p%d=v,", i)
	}
	if _, err := parseAuthorization(many); err == nil {
		t.Error("too many params accepted")
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		`Digest username="200", realm="pbx.test", nonce="abc", uri="sip:pbx.test", response="0123", algorithm=MD5, cnonce="c", qop=auth, nc=00000001`,
		`Digest username="a\"b", realm="x,y"`,
		`Digest realm="pbx.test", nonce="n", algorithm=MD5, qop="auth", stale=true`,
		`Digest ,,a=b,,`,
		`Basic abc==`,
		`Digest a="\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAuthorization(s)
		if err != nil {
			return
		}
		if a.scheme == "" || len(a.params) == 0 || len(a.params) > maxAuthParams {
			t.Fatalf("accepted %q as %+v", s, a)
		}
		// Round trip: rendering the params back and parsing again gives the same.
		parts := make([]string, 0, len(a.params))
		for k, v := range a.params {
			parts = append(parts, k+"="+quote(v))
		}
		b, err := parseAuthorization(a.scheme + " " + strings.Join(parts, ", "))
		if err != nil || b.scheme != a.scheme || !maps.Equal(a.params, b.params) {
			t.Fatalf("round trip of %q: %+v, %v (first %+v)", s, b, err, a)
		}
		// The digest checks never panic on what the parser accepts.
		if c, reason := digestFrom(a.params); reason == "" {
			digestMatches(c, "REGISTER", "pw")
		}
	})
}

// TestConcurrentRegister hammers one registrar from several goroutines while
// Run sweeps, with OnChange reading back into the registrar, as the PBX does.
func TestConcurrentRegister(t *testing.T) {
	dir := testDir{}
	for i := range 8 {
		dir[fmt.Sprintf("%d@%s", 400+i, testDomain)] = "pw"
	}
	var mu sync.Mutex
	last := map[string][]Binding{}
	var r *Registrar
	r = New(func() Directory { return dir }, Options{Log: testLogger(), MinExpires: 50 * time.Millisecond,
		MaxExpires: 50 * time.Millisecond, OnChange: func(_, account string, c []Binding) {
			_ = r.Count()
			_ = r.Contacts("acme", account)
			mu.Lock()
			last[account] = c
			mu.Unlock()
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			user := fmt.Sprint(400 + i)
			var nc uint32
			nonce := ""
			for j := range 60 {
				req := inproc(sip.REGISTER, user,
					sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@192.0.2.%d:%d>", user, i, 5060+j%3)),
					sip.NewHeader("Expires", "1"))
				if nonce == "" {
					tx := &fakeTx{}
					r.HandleRegister(req, tx)
					a, err := parseAuthorization(tx.last().GetHeader("WWW-Authenticate").Value())
					if err != nil {
						t.Errorf("challenge: %v", err)
						return
					}
					nonce = a.params["nonce"]
				}
				nc++
				tx := &fakeTx{}
				r.HandleRegister(withAuth(req, "Authorization",
					digestAnswer(user, testDomain, "pw", "REGISTER", req.Recipient.Addr(), nonce, nc, "c")), tx)
				if code := tx.last().StatusCode; code != 200 {
					t.Errorf("%s #%d: %d", user, j, code)
					return
				}
				if j%20 == 19 {
					time.Sleep(60 * time.Millisecond) // let some expire
				}
			}
		})
	}
	wg.Wait()
	// Everything expires; the last OnChange of each account says so.
	deadline := time.Now().Add(3 * time.Second)
	for r.Count() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := r.Count(); n != 0 {
		t.Fatalf("Count %d after expiry", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for account, c := range last {
		if len(c) != 0 {
			t.Errorf("%s: last OnChange %v", account, c)
		}
	}
}
