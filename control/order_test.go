package control

import (
	"context"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

func seqEvent(typ, account, call string) *events.Event {
	return &events.Event{Type: typ, Customer: "demo", Account: account, Call: call}
}

func waits(t *ticket) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { t.wait(ctx); close(done) }()
	select {
	case <-done:
		return ctx.Err() != nil
	case <-time.After(time.Second):
		return true
	}
}

// "John holds, then dials *70": the new call waits for the hold to be
// handled, whatever worker each is on; events that are not new calls or
// transfers, and other phones' events, never wait.
func TestSequencerNewCallWaitsForThePhonesEarlierEvents(t *testing.T) {
	s := newSequencer()
	held := s.admit(seqEvent(events.CallHeld, "333", "leg-1"))
	other := s.admit(seqEvent(events.CallAnswered, "201", "leg-9"))
	ended := s.admit(seqEvent(events.CallEnded, "333", "leg-3"))
	dial := s.admit(seqEvent(events.CallStarted, "333", "leg-2"))
	elsewhere := s.admit(seqEvent(events.CallStarted, "201", "leg-8"))
	trunk := s.admit(&events.Event{Type: events.CallStarted, Customer: "demo", Call: "leg-7"})

	if trunk != nil {
		t.Error("a trunk leg (no account) got a ticket")
	}
	if waits(ended) || waits(held) || waits(other) {
		t.Fatal("an event that is not a new call waited")
	}
	s.finish(other)
	if waits(elsewhere) {
		t.Fatal("201's new call waited although 201 had nothing in flight")
	}
	if !waits(dial) {
		t.Fatal("333's new call did not wait for its hold")
	}
	s.finish(held)
	if !waits(dial) {
		t.Fatal("333's new call did not wait for its earlier call.ended")
	}
	s.finish(ended)
	if waits(dial) {
		t.Fatal("333's new call still waits after its earlier events")
	}
	// An event admitted after the new call is not waited for by it.
	later := s.admit(seqEvent(events.CallHeld, "333", "leg-1"))
	s.finish(dial)
	s.finish(elsewhere)
	s.finish(later)
	if n := s.inFlight(); n != 0 {
		t.Errorf("%d accounts still in flight", n)
	}
}
