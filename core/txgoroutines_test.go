package core

import (
	rtmetrics "runtime/metrics"
	"testing"

	"github.com/callpark/callpark/internal/gopool"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipgo handles each message on a goroutine of its own; given a pool
// (third_party/sipgo, patch 4), as the core gives its own, a goroutine
// that has handled one waits for the next rather than each message
// starting a fresh goroutine and growing its stack by copying. A handler
// that blocks still holds up no other message.
func TestMessageGoroutinesWaitForTheNext(t *testing.T) {
	release := make(chan struct{})
	srv := sipgoServer(t, sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerGo(gopool.New(0).Go)))
	srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.CallID().Value() == "blocked" {
			<-release
		}
		if err := tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)); err != nil {
			t.Error(err)
		}
	})
	conn := loopbackUDP(t)
	go srv.ServeUDP(conn)
	phone := loopbackUDP(t)
	exchange := func(callID string, n int) {
		t.Helper()
		sendInfo(t, phone, conn, callID, n, "")
		awaitOK(t, phone, callID)
	}

	sendInfo(t, phone, conn, "blocked", 1, "")
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

func goroutinesCreated() uint64 {
	s := []rtmetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
