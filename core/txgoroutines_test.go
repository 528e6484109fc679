package core

import (
	"fmt"
	"net"
	rtmetrics "runtime/metrics"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipgo handles each message on a goroutine of its own; a goroutine that
// has handled one waits for the next (third_party/sipgo, patch 4) rather
// than each message starting a fresh goroutine and growing its stack by
// copying. A handler that blocks still holds up no other message.
func TestMessageGoroutinesWaitForTheNext(t *testing.T) {
	release := make(chan struct{})
	conn := sipServer(t, func(srv *sipgo.Server) {
		srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
			if req.CallID().Value() == "blocked" {
				<-release
			}
			if err := tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)); err != nil {
				t.Error(err)
			}
		})
	})
	phone := loopbackUDP(t)
	info := func(callID string, n int) string {
		return "INFO sip:200@127.0.0.1 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + phone.LocalAddr().String() + fmt.Sprintf(";branch=z9hG4bK-%s-%d\r\n", callID, n) +
			"From: <sip:100@127.0.0.1>;tag=a\r\nTo: <sip:200@127.0.0.1>;tag=b\r\n" +
			"Call-ID: " + callID + fmt.Sprintf("\r\nCSeq: %d INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", n)
	}
	exchange := func(callID string, n int) {
		t.Helper()
		if _, err := phone.WriteTo([]byte(info(callID, n)), conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		awaitOK(t, phone, callID)
	}

	if _, err := phone.WriteTo([]byte(info("blocked", 1)), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	exchange("free", 1) // answered while the first handler still blocks

	const messages = 200
	created := goroutinesCreated()
	for n := range messages {
		exchange("sequential", n+1)
	}
	if got := goroutinesCreated() - created; got > messages/4 {
		t.Errorf("%d messages, one after another, started %d goroutines: each should find the last one's waiting", messages, got)
	}
	close(release)
	awaitOK(t, phone, "blocked")
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

func goroutinesCreated() uint64 {
	s := []rtmetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
