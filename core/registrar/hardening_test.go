package registrar

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/ban"
)

func sha256Answer(user, realm, password, method, uri, nonce string, nc uint32, cnonce string) string {
	h := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + realm + ":" + password)
	ha2 := h(method + ":" + uri)
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(strings.Join([]string{ha1, nonce, ncs, cnonce, "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=SHA-256, cnonce="%s", qop=auth, nc=%s`,
		user, realm, nonce, uri, resp, cnonce, ncs)
}

// TestChallengeOffersSHA256: RFC 8760 — a challenge offers MD5 and SHA-256,
// and a SHA-256 answer is accepted.
func TestChallengeOffersSHA256(t *testing.T) {
	r, _ := newInproc(t, Options{})
	reg := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"))
	tx := &fakeTx{}
	r.HandleRegister(reg, tx)
	var algs []string
	for _, h := range tx.last().GetHeaders("WWW-Authenticate") {
		for _, p := range strings.Split(h.Value(), ",") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && k == "algorithm" {
				algs = append(algs, v)
			}
		}
	}
	if strings.Join(algs, " ") != "MD5 SHA-256" {
		t.Fatalf("challenges offer %v, want MD5 then SHA-256", algs)
	}
	nonce := challengeOf(t, tx.last())["nonce"]
	tx = &fakeTx{}
	r.HandleRegister(withAuth(reg, "Authorization", sha256Answer("200", testDomain, "secret200", "REGISTER", reg.Recipient.Addr(), nonce, 1, "c")), tx)
	if res := tx.last(); res.StatusCode != 200 {
		t.Fatalf("SHA-256 credentials: %d %s", res.StatusCode, res.Reason)
	}
	tx = &fakeTx{}
	r.HandleRegister(withAuth(reg, "Authorization", sha256Answer("200", testDomain, "wrong", "REGISTER", reg.Recipient.Addr(), nonce, 2, "c")), tx)
	if res := tx.last(); res.StatusCode != 403 {
		t.Fatalf("wrong SHA-256 password: %d", res.StatusCode)
	}
}

// TestUnknownUserLooksLikeWrongPassword: whatever a guesser sends, a real
// extension and an unknown one get the same answer.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	r, _ := newInproc(t, Options{})
	answerFor := func(user, nonce string) int {
		req := inproc(sip.REGISTER, user, sip.NewHeader("Contact", "<sip:"+user+"@192.0.2.10>"))
		if nonce == "" {
			tx := &fakeTx{}
			r.HandleRegister(req, tx)
			return tx.last().StatusCode
		}
		tx := &fakeTx{}
		r.HandleRegister(withAuth(req, "Authorization", digestAnswer(user, testDomain, "guess", "REGISTER", req.Recipient.Addr(), nonce, 1, "c")), tx)
		return tx.last().StatusCode
	}
	good := challengeFor(t, r, inproc(sip.REGISTER, "200"))
	for _, tc := range []struct{ name, nonce string }{
		{"no credentials", ""},
		{"bogus nonce", "bogus"},
		{"valid nonce, wrong password", good},
	} {
		real, unknown := answerFor("200", tc.nonce), answerFor("999", tc.nonce)
		if real != unknown {
			t.Errorf("%s: real extension %d, unknown %d", tc.name, real, unknown)
		}
	}
}

// TestDigestURIMustMatch: a response computed for another URI is refused.
func TestDigestURIMustMatch(t *testing.T) {
	r, _ := newInproc(t, Options{LocalAddrs: []string{"192.0.2.1:5060"}})
	invite := inproc(sip.INVITE, "200")
	invite.Recipient = sip.Uri{Scheme: "sip", User: "201", Host: testDomain}
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"sip:201@" + testDomain, true},
		{"sip:192.0.2.1:5060", true}, // the server itself, as sipp puts it
		{"sip:*71333@" + testDomain, false},
		{"sip:192.0.2.99:5060", false},
		{"garbage", false},
	} {
		nonce := challengeFor(t, r, inproc(sip.REGISTER, "200"))
		tx := &fakeTx{}
		_, ok := r.Authenticate(withAuth(invite, "Authorization", digestAnswer("200", testDomain, "secret200", "INVITE", tc.uri, nonce, 1, "c")), tx)
		if ok != tc.ok {
			t.Errorf("uri %q: accepted=%v, want %v (%v)", tc.uri, ok, tc.ok, tx.last())
		}
	}
}

// TestLimiterLocksGuessersOut: failures reach the limiter, a locked
// account refuses strangers unchecked, its own phone still registers.
func TestLimiterLocksGuessersOut(t *testing.T) {
	bans := ban.New(ban.Config{Failures: 1000, AccountFailures: 3})
	r, _ := newInproc(t, Options{Limiter: bans})
	reg := func(src, password string) int {
		req := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"))
		req.SetSource(src)
		nonce := challengeFor(t, r, req)
		tx := &fakeTx{}
		r.HandleRegister(withAuth(req, "Authorization", digestAnswer("200", testDomain, password, "REGISTER", req.Recipient.Addr(), nonce, 1, "c")), tx)
		return tx.last().StatusCode
	}
	if code := reg("192.0.2.10:5060", "secret200"); code != 200 {
		t.Fatalf("the phone: %d", code)
	}
	for i := range 4 {
		reg(fmt.Sprintf("198.51.100.%d:5060", i), "guess")
	}
	if code := reg("198.51.100.50:5060", "secret200"); code != 403 {
		t.Fatalf("a stranger with the right password on a locked account: %d, want 403", code)
	}
	if code := reg("192.0.2.10:5060", "secret200"); code != 200 {
		t.Fatalf("the phone on its locked account: %d", code)
	}
	if !bans.Locked(testDomain+"/200", netip.MustParseAddr("198.51.100.1")) {
		t.Fatal("account not locked")
	}
}
