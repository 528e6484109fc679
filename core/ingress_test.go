package core

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/ban"
)

// TestReadFilter: what reaches sipgo's parser. A UDP response missing a
// mandatory header is dropped (sipgo names the transport "UDP": the check
// once compared with "udp" and never dropped anything); a banned address
// gets nothing over UDP, and over TCP or TLS its connection is ended.
func TestReadFilter(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	bans := ban.New(ban.Config{Failures: 1})
	banned := netip.MustParseAddr("192.0.2.66")
	for range 3 {
		bans.Fail(banned, "")
	}
	if !bans.Banned(banned) {
		t.Fatal("test set-up: address not banned")
	}
	c := &Core{metrics: m, cfg: Config{Bans: bans}}
	phone := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5062}
	const incomplete = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n" +
		"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n" // no CSeq
	const complete = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n" +
		"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"

	for _, tc := range []struct {
		name      string
		transport string
		from      net.Addr
		data      string
		pass      bool
		err       error
	}{
		{"incomplete response over UDP", "UDP", phone, incomplete, false, nil},
		{"complete response over UDP", "UDP", phone, complete, true, nil},
		{"incomplete response over TCP (a stream: the parser frames it)", "TCP", &net.TCPAddr{IP: phone.IP, Port: 5062}, incomplete, true, nil},
		{"banned over UDP", "UDP", &net.UDPAddr{IP: banned.AsSlice(), Port: 5060}, complete, false, nil},
		{"banned over TCP", "TCP", &net.TCPAddr{IP: banned.AsSlice(), Port: 5060}, complete, false, errBanned},
		{"banned over TLS", "TLS", &net.TCPAddr{IP: banned.AsSlice(), Port: 5061}, complete, false, errBanned},
	} {
		got, err := c.readFilter(sip.TransportReadProps{Transport: tc.transport, RemoteAddr: tc.from}, []byte(tc.data))
		if (len(got) > 0) != tc.pass || !errors.Is(err, tc.err) {
			t.Errorf("%s: passed %v, error %v; want passed %v, error %v", tc.name, len(got) > 0, err, tc.pass, tc.err)
		}
	}
}

// TestRequestChecksDoNotAllocate: validateRequest runs on every request
// before anything else; looking for duplicated headers made a slice per
// name and, in sipgo, lowered every header name it passed (35 allocations
// a request with a User-Agent and an Authorization header; third_party/sipgo
// patch 7).
func TestRequestChecksDoNotAllocate(t *testing.T) {
	m, err := sip.ParseMessage([]byte("INVITE sip:201@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1\r\nFrom: <sip:200@127.0.0.1>;tag=a\r\n" +
		"To: <sip:201@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nUser-Agent: Yealink\r\n" +
		"Allow: INVITE, ACK\r\nSupported: replaces\r\nAuthorization: Digest username=\"200\"\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	if code, reason, _ := validateRequest(req); code != 0 {
		t.Fatalf("refused %d %s", code, reason)
	}
	if n := testing.AllocsPerRun(100, func() { validateRequest(req) }); n != 0 {
		t.Errorf("validateRequest: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { req.GetHeader("authorization") }); n != 0 {
		t.Errorf("GetHeader: %v allocations", n)
	}
}
