package registrar

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func TestRegisterRightPassword(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "secret200")

	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071;transport=udp>"}, 120)
	res := ph.send(req)
	chal := challengeOf(t, res)
	if chal["realm"] != testDomain || chal["qop"] != "auth" || chal["algorithm"] != "MD5" || chal["nonce"] == "" {
		t.Fatalf("challenge %v", chal)
	}
	if _, ok := chal["stale"]; ok {
		t.Fatal("first challenge must not be stale")
	}
	res = ph.resend(req, ph.authorize(req, res, 1))
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("want 200, got %d %s", res.StatusCode, res.Reason)
	}
	got := contactsOf(res)
	if len(got) != 1 || !strings.HasPrefix(got[0], "sip:200@127.0.0.1:5071;transport=udp ") {
		t.Fatalf("contacts in 200: %v", got)
	}
	if e, _ := strconv.Atoi(strings.Fields(got[0])[1]); e < 119 || e > 120 {
		t.Fatalf("expires in 200: %v", got)
	}
	if h := res.GetHeader("Date"); h == nil {
		t.Fatal("200 without Date")
	} else if _, err := time.Parse(time.RFC1123, h.Value()); err != nil {
		t.Fatalf("Date %q: %v", h.Value(), err)
	}
	if h := res.GetHeader("Expires"); h == nil || h.Value() != "120" {
		t.Fatalf("Expires in 200: %v", h)
	}

	c := pbx.waitChange(t, "200", 2*time.Second)
	if c.customer != "acme" || len(c.contacts) != 1 {
		t.Fatalf("OnChange %+v", c)
	}
	b := pbx.r.Contacts("acme", "200")
	if len(b) != 1 {
		t.Fatalf("Contacts: %+v", b)
	}
	if b[0].Source != ph.local || b[0].Transport != "udp" || b[0].Contact.Port != 5071 ||
		b[0].CallID != ph.callID || b[0].CSeq != ph.cseq {
		t.Fatalf("binding %+v (phone at %s)", b[0], ph.local)
	}
	if pbx.r.Count() != 1 {
		t.Fatalf("Count %d", pbx.r.Count())
	}
}

func TestRegisterWrongPassword(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "wrong")
	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071>"}, 120)
	res := ph.send(req)
	if res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("want 401, got %d", res.StatusCode)
	}
	res = ph.resend(req, ph.authorize(req, res, 1))
	if res.StatusCode != sip.StatusForbidden {
		t.Fatalf("want 403, got %d %s", res.StatusCode, res.Reason)
	}
	if r := <-pbx.failures; r != ReasonBadPassword {
		t.Fatalf("failure reason %q", r)
	}
	if pbx.r.Count() != 0 {
		t.Fatal("binding made with a wrong password")
	}
}

func TestRegisterUnknownUser(t *testing.T) {
	pbx := startPBX(t, Options{})
	for _, ph := range []*testPhone{newPhone(t, pbx, "999", "x"), newPhone(t, pbx, "300", "secret300")} {
		// 300 exists, but in another domain.
		res := ph.register([]string{"<sip:u@127.0.0.1:5071>"}, 120)
		if res.StatusCode != sip.StatusForbidden {
			t.Fatalf("%s: want 403, got %d %s", ph.user, res.StatusCode, res.Reason)
		}
		if r := <-pbx.failures; r != ReasonUnknownUser {
			t.Fatalf("failure reason %q", r)
		}
	}
}

func TestRegisterRefresh(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "secret200")
	contact := []string{"<sip:200@127.0.0.1:5071>"}
	if res := ph.register(contact, 100); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	first := pbx.waitChange(t, "200", time.Second).contacts[0]

	time.Sleep(1100 * time.Millisecond)
	if res := ph.register(contact, 100); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	c := pbx.waitChange(t, "200", time.Second)
	if len(c.contacts) != 1 || !c.contacts[0].Expires.After(first.Expires) || c.contacts[0].CSeq <= first.CSeq {
		t.Fatalf("after refresh %+v, before %+v", c.contacts, first)
	}
	if pbx.r.Count() != 1 {
		t.Fatalf("Count %d after refresh", pbx.r.Count())
	}
}

func TestRegisterTwoContactsAndRemoval(t *testing.T) {
	pbx := startPBX(t, Options{})
	desk := newPhone(t, pbx, "200", "secret200")
	soft := newPhone(t, pbx, "200", "secret200")
	if res := desk.register([]string{"<sip:200@127.0.0.1:5071>"}, 300); res.StatusCode != 200 {
		t.Fatalf("desk: %d", res.StatusCode)
	}
	res := soft.register([]string{"<sip:200@127.0.0.1:5072;ob>;+sip.instance=\"<urn:uuid:1>\""}, 600)
	if res.StatusCode != 200 {
		t.Fatalf("soft: %d", res.StatusCode)
	}
	got := contactsOf(res)
	if len(got) != 2 || !strings.HasPrefix(got[0], "sip:200@127.0.0.1:5072;ob ") || !strings.HasPrefix(got[1], "sip:200@127.0.0.1:5071 ") {
		t.Fatalf("200 lists %v, want both, newest first", got)
	}
	// Contact header params other than expires are echoed.
	if c := res.GetHeaders("Contact")[0].(*sip.ContactHeader); !c.Params.Has("+sip.instance") {
		t.Fatalf("contact params lost: %s", c.Value())
	}
	b := pbx.r.Contacts("acme", "200")
	if len(b) != 2 || b[0].Source != soft.local || b[1].Source != desk.local {
		t.Fatalf("Contacts %+v", b)
	}

	// A query (no Contact) lists them without changing anything.
	if res := desk.register(nil, -1); res.StatusCode != 200 || len(contactsOf(res)) != 2 {
		t.Fatalf("query: %d %v", res.StatusCode, contactsOf(res))
	}

	// Contact expires=0 beats the Expires header and removes only that one.
	res = desk.register([]string{"<sip:200@127.0.0.1:5071>;expires=0"}, 300)
	if got := contactsOf(res); res.StatusCode != 200 || len(got) != 1 || !strings.HasPrefix(got[0], "sip:200@127.0.0.1:5072") {
		t.Fatalf("after removing desk: %d %v", res.StatusCode, got)
	}
	// Contact: * with Expires: 0 removes all.
	res = desk.register([]string{"*"}, 0)
	if res.StatusCode != 200 || len(contactsOf(res)) != 0 || pbx.r.Count() != 0 {
		t.Fatalf("after *: %d %v count %d", res.StatusCode, contactsOf(res), pbx.r.Count())
	}
	var last change
	for range 4 { // desk, soft, desk removed, all removed
		last = pbx.waitChange(t, "200", time.Second)
	}
	if len(last.contacts) != 0 {
		t.Fatalf("last OnChange %+v", last)
	}
}

func TestRegisterExpiry(t *testing.T) {
	pbx := startPBX(t, Options{MinExpires: time.Second, MaxExpires: time.Second})
	ph := newPhone(t, pbx, "200", "secret200")
	res := ph.register([]string{"<sip:200@127.0.0.1:5071>"}, 3600)
	if res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	if got := contactsOf(res); len(got) != 1 || !strings.HasSuffix(got[0], " 1") {
		t.Fatalf("want expires clamped to 1: %v", got)
	}
	if h := res.GetHeader("Expires"); h == nil || h.Value() != "1" {
		t.Fatalf("Expires %v", h)
	}
	if c := pbx.waitChange(t, "200", time.Second); len(c.contacts) != 1 {
		t.Fatalf("first change %+v", c)
	}
	start := time.Now()
	c := pbx.waitChange(t, "200", 3*time.Second)
	if len(c.contacts) != 0 || pbx.r.Count() != 0 || len(pbx.r.Contacts("acme", "200")) != 0 {
		t.Fatalf("after expiry: %+v count %d", c, pbx.r.Count())
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("expired after %v", d)
	}
}

func TestRegisterIntervalTooBrief(t *testing.T) {
	pbx := startPBX(t, Options{MinExpires: 60 * time.Second})
	ph := newPhone(t, pbx, "200", "secret200")
	res := ph.register([]string{"<sip:200@127.0.0.1:5071>"}, 10)
	if res.StatusCode != sip.StatusIntervalToBrief {
		t.Fatalf("want 423, got %d", res.StatusCode)
	}
	if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "60" {
		t.Fatalf("Min-Expires %v", h)
	}
	// A per-contact expires beats the header, both ways.
	res = ph.register([]string{"<sip:200@127.0.0.1:5071>;expires=10"}, 3600)
	if res.StatusCode != sip.StatusIntervalToBrief {
		t.Fatalf("contact param: want 423, got %d", res.StatusCode)
	}
	res = ph.register([]string{"<sip:200@127.0.0.1:5071>;expires=90"}, 10)
	if got := contactsOf(res); res.StatusCode != 200 || len(got) != 1 || !strings.HasSuffix(got[0], " 90") {
		t.Fatalf("want 200 with expires 90: %d %v", res.StatusCode, got)
	}
}

func TestRegisterStaleNonce(t *testing.T) {
	pbx := startPBX(t, Options{NonceTTL: 500 * time.Millisecond})
	ph := newPhone(t, pbx, "200", "secret200")
	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071>"}, 120)
	res := ph.send(req)
	auth := ph.authorize(req, res, 1)
	time.Sleep(600 * time.Millisecond)
	res = ph.resend(req, auth)
	if chal := challengeOf(t, res); chal["stale"] != "true" {
		t.Fatalf("want stale=true, got %v", chal)
	}
	res = ph.resend(req, ph.authorize(req, res, 1))
	if res.StatusCode != 200 {
		t.Fatalf("with the fresh nonce: %d", res.StatusCode)
	}
	// An old nonce with a wrong password is not "stale": the client must not
	// retry silently.
	bad := newPhone(t, pbx, "200", "wrong")
	req = bad.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5073>"}, 120)
	res = bad.send(req)
	auth = bad.authorize(req, res, 1)
	time.Sleep(600 * time.Millisecond)
	res = bad.resend(req, auth)
	if chal := challengeOf(t, res); chal["stale"] != "" {
		t.Fatalf("wrong password with old nonce got stale: %v", chal)
	}
}

func TestRegisterReplayedNonceCount(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "secret200")
	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071>"}, 120)
	chalRes := ph.send(req)
	nc1 := ph.authorize(req, chalRes, 1)
	if res := ph.resend(req, nc1); res.StatusCode != 200 {
		t.Fatalf("nc=1: %d", res.StatusCode)
	}
	// The same credentials again (a captured REGISTER replayed).
	res := ph.resend(req, nc1)
	if chal := challengeOf(t, res); chal["stale"] != "true" {
		t.Fatalf("replay: want 401 stale, got %v", chal)
	}
	if res := ph.resend(req, ph.authorize(req, chalRes, 3)); res.StatusCode != 200 {
		t.Fatalf("nc=3: %d", res.StatusCode)
	}
	if res := ph.resend(req, ph.authorize(req, chalRes, 2)); res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("lower nc=2: want 401, got %d", res.StatusCode)
	}
	reasons := []string{<-pbx.failures, <-pbx.failures}
	if !slices.Equal(reasons, []string{ReasonReplay, ReasonReplay}) {
		t.Fatalf("reasons %v", reasons)
	}
}

func TestRegisterForgedNonce(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "secret200")
	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071>"}, 120)
	for _, nonce := range []string{"abc", strings.Repeat("A", nonceLen), New(nil, Options{}).nonces.issue(time.Now(), testDomain)} {
		auth := digestAnswer("200", testDomain, "secret200", "REGISTER", req.Recipient.Addr(), nonce, 1, "c")
		res := ph.resend(req, auth)
		if chal := challengeOf(t, res); chal["stale"] != "" {
			t.Fatalf("nonce %q: got stale challenge", nonce)
		}
		if r := <-pbx.failures; r != ReasonInvalidNonce {
			t.Fatalf("reason %q", r)
		}
	}
}

func TestRegisterUsernameMismatch(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "secret200")
	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071>"}, 120)
	chal := challengeOf(t, ph.send(req))
	// 201's valid credentials used to register 200.
	auth := digestAnswer("201", testDomain, "secret201", "REGISTER", req.Recipient.Addr(), chal["nonce"], 1, "c")
	if res := ph.resend(req, auth); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("want 403, got %d", res.StatusCode)
	}
}

// TestRegisterSipgoDigest uses sipgo's own digest client (icholy/digest).
func TestRegisterSipgoDigest(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "200", "secret200")
	req := ph.request(sip.REGISTER, []string{"<sip:200@127.0.0.1:5071>"}, 120)
	res := ph.send(req)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := ph.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "200", Password: "secret200"})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("DoDigestAuth: %v %v", res, err)
	}
}

// TestRegisterDiago registers the way a diago-based phone does.
func TestRegisterDiago(t *testing.T) {
	pbx := startPBX(t, Options{})
	newDiagoPhone := func(user string) *diago.Diago {
		ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(testDomain))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ua.Close() })
		return diago.NewDiago(ua, diago.WithLogger(testLogger()),
			diago.WithTransport(diago.Transport{Transport: "udp", BindHost: "127.0.0.1", BindPort: 0}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	aor := sip.Uri{Scheme: "sip", User: "200", Host: testDomain}

	// Wrong password: 401, then 403.
	dg := newDiagoPhone("200")
	tx, err := dg.RegisterTransaction(ctx, aor, diago.RegisterOptions{Username: "200", Password: "nope", ProxyHost: pbx.addr, Expiry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var rerr *diago.RegisterResponseError
	if err := tx.Register(ctx); !errors.As(err, &rerr) || rerr.StatusCode() != sip.StatusForbidden {
		t.Fatalf("wrong password: %v", err)
	}

	// RegisterTransaction: register, then unregister (Contact: *, Expires: 0).
	tx, err = dg.RegisterTransaction(ctx, aor, diago.RegisterOptions{Username: "200", Password: "secret200", ProxyHost: pbx.addr, Expiry: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Register(ctx); err != nil {
		t.Fatalf("register: %v", err)
	}
	b := pbx.r.Contacts("acme", "200")
	if len(b) != 1 || b[0].Contact.Host != "127.0.0.1" || b[0].Contact.Port == 0 {
		t.Fatalf("bindings %+v", b)
	}
	if _, p, _ := net.SplitHostPort(b[0].Source); p != strconv.Itoa(b[0].Contact.Port) {
		t.Fatalf("source %s vs contact %s", b[0].Source, b[0].Contact.String())
	}
	if err := tx.Unregister(ctx); err != nil {
		t.Fatalf("unregister: %v", err)
	}
	if n := pbx.r.Count(); n != 0 {
		t.Fatalf("Count %d after unregister", n)
	}

	// dg.Register blocks, re-registering, and unregisters when ctx ends.
	for range 2 {
		pbx.waitChange(t, "200", time.Second)
	}
	dg2 := newDiagoPhone("200")
	rctx, rcancel := context.WithCancel(ctx)
	registered := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- dg2.Register(rctx, aor, diago.RegisterOptions{Username: "200", Password: "secret200", ProxyHost: pbx.addr,
			Expiry: time.Minute, OnRegistered: func() { close(registered) }})
	}()
	select {
	case err := <-done:
		t.Fatalf("dg.Register returned early: %v", err)
	case <-registered:
	case <-time.After(5 * time.Second):
		t.Fatal("dg.Register did not register")
	}
	if c := pbx.waitChange(t, "200", time.Second); len(c.contacts) != 1 {
		t.Fatalf("dg.Register: %+v", c)
	}
	rcancel()
	if c := pbx.waitChange(t, "200", 5*time.Second); len(c.contacts) != 0 {
		t.Fatalf("after dg.Register returned: %+v", c)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("dg.Register: %v", err)
	}
}

func TestAuthenticateInvite(t *testing.T) {
	pbx := startPBX(t, Options{})
	ph := newPhone(t, pbx, "201", "secret201")
	for _, method := range []sip.RequestMethod{sip.INVITE, sip.SUBSCRIBE} {
		req := ph.request(method, []string{"<sip:201@127.0.0.1:5071>"}, -1)
		res := ph.send(req)
		if res.StatusCode != sip.StatusUnauthorized {
			t.Fatalf("%s: want 401, got %d", method, res.StatusCode)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := ph.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "201", Password: "secret201"})
		cancel()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", method, res, err)
		}
		if h := res.GetHeader("X-Identity"); h == nil || h.Value() != "acme/201@"+testDomain {
			t.Fatalf("%s identity %v", method, h)
		}
	}
	// Wrong password on INVITE: 403.
	bad := newPhone(t, pbx, "201", "wrong")
	req := bad.request(sip.INVITE, []string{"<sip:201@127.0.0.1:5071>"}, -1)
	res := bad.send(req)
	if res = bad.resend(req, bad.authorize(req, res, 1)); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("wrong password INVITE: %d", res.StatusCode)
	}
}
