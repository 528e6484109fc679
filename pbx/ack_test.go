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

// TestAnAnswerIsResentUntilItsACK: a carrier whose ACK does not come gets
// the 200 OK again T1, 2·T1, 4·T1 after the last (RFC 3261 13.3.1.4);
// its ACK stops them, and the call stays up.
func TestAnAnswerIsResentUntilItsACK(t *testing.T) {
	t.Parallel()
	p := pbxtest.Start(t)
	reception := p.Phone(t, "demo", "200")
	carrier := pbxtest.DialRaw(t, p.Addr)
	did := "sip:+15551230000@" + sippDomain
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	invite := "INVITE " + did + " SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-resent-1\r\n" +
		"From: <sip:+15557654321@carrier>;tag=c1\r\nTo: <" + did + ">\r\nCall-ID: resent-answer@carrier\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:carrier@LOCAL>\r\n" +
		fmt.Sprintf("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	carrier.Send(t, invite)
	call := reception.Answer(t, 5*time.Second)

	var answers []time.Time
	var ok200 string
	for len(answers) < 4 {
		msg, at := carrier.Next(5 * time.Second)
		if msg == "" {
			t.Fatalf("200 OK came %d times, then nothing for 5 s", len(answers))
		}
		if strings.HasPrefix(msg, "SIP/2.0 200") {
			answers = append(answers, at)
			ok200 = msg
		}
	}
	for i, want := range []time.Duration{sip.T1, 2 * sip.T1, 4 * sip.T1} {
		if got := answers[i+1].Sub(answers[i]); got < want-100*time.Millisecond || got > want+400*time.Millisecond {
			t.Errorf("resend %d came %v after the one before, want %v", i+1, got.Round(time.Millisecond), want)
		}
	}
	ack := "ACK " + did + " SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-resent-ack\r\n" +
		"From: <sip:+15557654321@carrier>;tag=c1\r\nTo: " + header(ok200, "To") + "\r\nCall-ID: resent-answer@carrier\r\n" +
		"CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	carrier.Send(t, ack)
	// The next resend would come 8·T1 after the last.
	if got := pbxtest.StatusLines(carrier.Answers(8*sip.T1 - time.Since(answers[3]) + time.Second)); len(got) != 0 {
		t.Fatalf("after the ACK: %q, want nothing", got)
	}
	select {
	case <-call.Ended():
		t.Fatal("the ACKed call ended")
	default:
	}
}
