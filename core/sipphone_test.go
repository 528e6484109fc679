package core

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sendInfo sends, from phone to server, an in-dialog INFO: transaction n
// of call callID (its own branch), with body as DTMF relay ("" for none).
func sendInfo(t *testing.T, phone, server *net.UDPConn, callID string, n int, body string) {
	t.Helper()
	msg := "INFO sip:200@127.0.0.1 SIP/2.0\r\n" +
		fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d\r\n", phone.LocalAddr(), callID, n) +
		"From: <sip:100@127.0.0.1>;tag=a\r\nTo: <sip:200@127.0.0.1>;tag=b\r\n" +
		fmt.Sprintf("Call-ID: %s\r\nCSeq: %d INFO\r\nMax-Forwards: 70\r\n", callID, n)
	if body != "" {
		msg += "Content-Type: application/dtmf-relay\r\n"
	}
	msg += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := phone.WriteTo([]byte(msg), server.LocalAddr()); err != nil {
		t.Fatal(err)
	}
}

// awaitOK reads the phone's next datagram: a 200 OK of call callID.
func awaitOK(t *testing.T, phone *net.UDPConn, callID string) {
	t.Helper()
	phone.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2048)
	n, _, err := phone.ReadFrom(b)
	if err != nil {
		t.Fatalf("no answer for call %s: %v", callID, err)
	}
	res, err := sip.ParseMessage(b[:n])
	if err != nil {
		t.Fatal(err)
	}
	r, ok := res.(*sip.Response)
	if !ok || r.StatusCode != sip.StatusOK || r.CallID().Value() != callID {
		t.Fatalf("got %q, want the 200 OK of call %s", b[:min(n, 40)], callID)
	}
}
