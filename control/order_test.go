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

// mustWait fails the test unless tk is still waiting.
func mustWait(t *testing.T, tk *ticket, failure string) {
	t.Helper()
	if !waits(tk) {
		t.Fatal(failure)
	}
}

// mustGo fails the test unless tk goes at once.
func mustGo(t *testing.T, tk *ticket, failure string) {
	t.Helper()
	if waits(tk) {
		t.Fatal(failure)
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
	for _, tk := range []*ticket{ended, held, other} {
		mustGo(t, tk, "an event that is not a new call waited")
	}
	s.finish(other)
	mustGo(t, elsewhere, "201's new call waited although 201 had nothing in flight")
	mustWait(t, dial, "333's new call did not wait for its hold")
	s.finish(held)
	mustWait(t, dial, "333's new call did not wait for its earlier call.ended")
	s.finish(ended)
	mustGo(t, dial, "333's new call still waits after its earlier events")
	// An event admitted after the new call is not waited for by it.
	later := s.admit(seqEvent(events.CallHeld, "333", "leg-1"))
	s.finish(dial)
	s.finish(elsewhere)
	s.finish(later)
	if n := s.inFlight(); n != 0 {
		t.Errorf("%d accounts still in flight", n)
	}
}

// Under overload one phone can have thousands of events in flight, handled
// out of order by the workers: a new call goes exactly when the last event
// before it is handled, never earlier, and later events never hold it.
func TestSequencerManyInFlightOutOfOrder(t *testing.T) {
	s := newSequencer()
	const n = 2000
	var before []*ticket
	for i := range n {
		before = append(before, s.admit(seqEvent(events.CallAnswered, "100", "leg-"+string(rune('a'+i%26)))))
	}
	dial := s.admit(seqEvent(events.CallStarted, "100", "leg-new"))
	after := s.admit(seqEvent(events.CallEnded, "100", "leg-z"))
	dial2 := s.admit(seqEvent(events.CallTransfer, "100", "leg-t"))
	s.finish(after) // a later event handled first holds nothing
	// Finish all but one, in a scrambled order.
	last := before[n/3]
	for i := range n {
		if j := (i * 7919) % n; before[j] != last {
			s.finish(before[j])
		}
	}
	mustWait(t, dial, "the new call went before every earlier event was handled")
	s.finish(last)
	mustGo(t, dial, "the new call still waits after every earlier event was handled")
	mustWait(t, dial2, "the transfer did not wait for the new call before it")
	s.finish(dial)
	mustGo(t, dial2, "the transfer still waits")
	s.finish(dial2)
	if k := s.inFlight(); k != 0 {
		t.Errorf("%d accounts still in flight", k)
	}
}

func BenchmarkSequencerBacklog(b *testing.B) {
	// 5,000 events of one phone in flight: admitting a new call must not
	// cost in proportion to them.
	s := newSequencer()
	for range 5000 {
		s.admit(seqEvent(events.CallAnswered, "100", "leg"))
	}
	b.ReportAllocs()
	for b.Loop() {
		t := s.admit(seqEvent(events.CallStarted, "100", "leg-new"))
		_ = t
	}
}
