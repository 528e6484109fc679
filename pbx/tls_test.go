package pbx_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestTLSCallParkAndRetrieve: a phone on TLS with SRTP calls a plain UDP
// phone (a bridge between SRTP and RTP), tones pass both ways; the TLS
// phone is parked, hears music over SRTP, and is retrieved by another TLS
// phone.
func TestTLSCallParkAndRetrieve(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithTLS(t))
	alice := p.PhoneTLS(t, "demo", "200")
	bob := p.Phone(t, "demo", "201")
	carol := p.PhoneTLS(t, "demo", "202")

	ca, cb := connect(t, alice, bob)
	if sdp := ca.RemoteSDP(); !strings.Contains(sdp, "RTP/SAVP") || !strings.Contains(sdp, "a=crypto:") {
		t.Fatalf("answer to an SRTP offer over TLS is not SRTP:\n%s", sdp)
	}
	talk(t, ca, cb)

	cc := parkAndRetrieve(t, p, ca, cb, carol)
	cc.Hangup()
	ca.ExpectEnded(t, 5*time.Second)
}

// TestSRTPRequired: 202's calls must be SRTP over TLS. Its plain phone's
// call gets 488 and is never rung; its TLS phone calls and is called. An
// SRTP offer over plain UDP is refused: keys in clear protect nothing.
func TestSRTPRequired(t *testing.T) {
	dir := writeDialplans(t, "customers/demo.yaml", `    name: Support
    password: "secret202"`, `    name: Support
    password: "secret202"
    srtp: required`)
	p := pbxtest.Start(t, pbxtest.WithTLS(t), pbxtest.WithDialplans(dir))
	plain := p.Phone(t, "demo", "202")
	bob := p.Phone(t, "demo", "201")

	if _, err := plain.DialErr(t.Context(), "201"); pbxtest.StatusOf(err) != 488 {
		t.Fatalf("plain call from an SRTP-only account: %v, want 488", err)
	}
	bob.NoCall(t, 300*time.Millisecond)

	secure := p.PhoneTLS(t, "demo", "202")
	cb, cs := connect(t, bob, secure)
	talk(t, cb, cs)
	plain.NoCall(t, 300*time.Millisecond)
	cb.Hangup()
	cs.ExpectEnded(t, 5*time.Second)

	cs, cb = connect(t, secure, bob)
	talk(t, cs, cb)
	cs.Hangup()

	keysInClear := p.PhoneWith(t, "demo", "200", func(ph *pbxtest.Phone) { ph.SRTP = true })
	if _, err := keysInClear.DialErr(t.Context(), "201"); pbxtest.StatusOf(err) != 488 {
		t.Fatalf("SRTP offer over UDP: %v, want 488", err)
	}
}

// TestConsoleOverHTTPS: --web-tls serves the console over HTTPS with the
// SIP listener's certificate, and the session cookie is Secure.
func TestConsoleOverHTTPS(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithTLS(t), pbxtest.WithConsole(), func(c *pbx.Config) { c.WebTLS = true })
	base := p.WebURL()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("console URL %q is not https", base)
	}
	pemBytes, err := os.ReadFile(p.Config.TLSCertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 5 * time.Second}

	res, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / over HTTPS: %s", res.Status)
	}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(`{"customer":"demo","user":"200","password":"secret200"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sign-in over HTTPS: %s", res.Status)
	}
	var secure bool
	for _, c := range res.Cookies() {
		secure = secure || c.Secure
	}
	if !secure {
		t.Errorf("session cookie over HTTPS is not Secure: %v", res.Header["Set-Cookie"])
	}

	plain := "http://" + strings.TrimPrefix(base, "https://")
	if res, err := http.Get(plain + "/"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the HTTPS console: %s", res.Status)
		}
	}
}
