package pbx_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestAResentAnswerGetsTheSameACK: a carrier whose 200 OK seemed lost
// sends it again; the PBX answers each copy with the very ACK it sent
// first (RFC 3261 13.2.2.4), same branch and all, which the carrier takes
// for a retransmission. A new ACK each time (a new branch) is a second
// request to a strict UA: sipp aborted such calls under load.
func TestAResentAnswerGetsTheSameACK(t *testing.T) {
	carrier, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer carrier.Close()
	dir := outsideDialplans(t, fmt.Sprintf("  - name: primary\n    address: %s\n", carrier.LocalAddr()))
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	sales := p.Phone(t, "demo", "201")
	go func() { _, _ = sales.DialErr(t.Context(), "9004930123456") }()

	invite, from := readRequest(t, carrier, sip.INVITE)
	media, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	answer := sip.NewResponseFromRequest(invite, sip.StatusOK, "OK", []byte(fmt.Sprintf(
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
		media.LocalAddr().(*net.UDPAddr).Port)))
	answer.To().Params.Add("tag", "carrier-tag")
	answer.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "carrier", Host: "127.0.0.1", Port: carrier.LocalAddr().(*net.UDPAddr).Port}})
	answer.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))

	var acks []*sip.Request
	for range 3 { // the answer, then two copies of it
		if _, err := carrier.WriteTo([]byte(answer.String()), from); err != nil {
			t.Fatal(err)
		}
		ack, _ := readRequest(t, carrier, sip.ACK)
		acks = append(acks, ack)
	}
	for i, ack := range acks[1:] {
		if got, want := branch(ack), branch(acks[0]); got != want {
			t.Errorf("ACK to copy %d of the answer has branch %q, the first %q", i+1, got, want)
		}
		if ack.String() != acks[0].String() {
			t.Errorf("ACK to copy %d of the answer:\n%s\nthe first:\n%s", i+1, ack, acks[0])
		}
	}
}

// readRequest reads datagrams on conn until a request of method comes
// (answering nothing else), within 5 s.
func readRequest(t *testing.T, conn net.PacketConn, method sip.RequestMethod) (*sip.Request, net.Addr) {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = conn.SetReadDeadline(deadline)
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no %s: %v", method, err)
		}
		msg, err := sip.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		if req, ok := msg.(*sip.Request); ok && req.Method == method {
			return req, from
		}
	}
}

func branch(req *sip.Request) string {
	b, _ := req.Via().Params.Get("branch")
	return strings.TrimSpace(b)
}
