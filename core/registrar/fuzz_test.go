package registrar

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// FuzzParseContacts: any Contact and Expires values a REGISTER carries are
// either refused with an error or give contacts with a sip/sips URI, a
// host and a sane expiry; nothing panics.
func FuzzParseContacts(f *testing.F) {
	for _, c := range []string{
		`<sip:200@127.0.0.1:5062;transport=udp>;expires=3600`,
		`*`,
		`"Phone" <sips:200@[::1]:5061>;q=0.7;expires=0, <sip:200@10.0.0.1>`,
		`<sip:200@host>;expires=99999999999999999999`,
		`<tel:+15551234>`,
		`<sip:@>;expires=-1`,
		`*, *`,
	} {
		f.Add(c, "60")
	}
	f.Fuzz(func(t *testing.T, contact, expires string) {
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "demo.callpark.test"})
		req.AppendHeader(sip.NewHeader("Contact", contact))
		req.AppendHeader(sip.NewHeader("Expires", expires))
		list, _, err := parseContacts(req)
		if err != nil {
			return
		}
		for _, c := range list {
			if s := strings.ToLower(c.uri.Scheme); s != "sip" && s != "sips" || c.uri.Host == "" {
				t.Fatalf("accepted contact %+v from %q", c.uri, contact)
			}
			if c.expires < -1 || c.expires > 1<<32-1 {
				t.Fatalf("expires %d from %q", c.expires, contact)
			}
			if c.key == "" {
				t.Fatal("contact without key")
			}
		}
		if sec, ok := parseDeltaSeconds(expires); ok && (sec < 0 || sec > 1<<32-1) {
			t.Fatalf("Expires %q = %d", expires, sec)
		}
	})
}

// FuzzNonceCheck: only nonces we issued, for their realm, pass; any other
// string is invalid (or stale), never a panic.
func FuzzNonceCheck(f *testing.F) {
	n := newNonces([]byte("fuzz-secret-0123456789abcdef"), time.Minute, 1000)
	// The one valid nonce, built as issue builds one but with fixed time
	// and randomness, so that every fuzzing process agrees on it.
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixNano()))
	copy(raw[8:16], "fixedrnd")
	n.mac(raw[16:], raw[:16], "demo.callpark.test")
	good := base64.RawURLEncoding.EncodeToString(raw[:])
	f.Add(good, "demo.callpark.test")
	f.Add(good, "acme.callpark.test")
	f.Add(strings.Repeat("A", len(good)), "demo.callpark.test")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, nonce, realm string) {
		st, _ := n.check(now, nonce, realm)
		if st == nonceOK && !(nonce == good && realm == "demo.callpark.test") {
			t.Fatalf("forged nonce %q for %q accepted", nonce, realm)
		}
	})
}
