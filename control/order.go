package control

import (
	"context"
	"sync"

	"github.com/callpark/callpark/events"
)

// Ordering of events. The events of one leg are handled in order, on the
// worker of that leg; the legs of one phone run in parallel, because one
// account (a receptionist, a console, a parking attendant's phone) can
// carry hundreds of calls a minute and serialising them all on one worker
// made it the service's throughput limit. What does depend on a phone's
// other legs is a new call or a transfer: "John holds, then dials *70"
// must see the hold. So call.started and call.transfer of an account wait
// until every event of that account dispatched before them has been
// handled; nothing else waits. Dispatch order is the order NATS delivered
// the events in (one subscription, one goroutine), and a ticket only ever
// waits on tickets dispatched before it, so waits cannot form a cycle.

// sequencer tracks the events of each account in flight.
type sequencer struct {
	mu       sync.Mutex
	inflight map[string]map[*ticket]struct{} // by account key
}

// ticket is one event's place in its account's order.
type ticket struct {
	key   string
	done  chan struct{}
	after []*ticket // tickets to wait for before handling
}

func newSequencer() *sequencer {
	return &sequencer{inflight: map[string]map[*ticket]struct{}{}}
}

// accountKey is the phone an event belongs to ("" for a trunk leg).
func accountKey(e *events.Event) string {
	if e.Account == "" {
		return ""
	}
	return e.Customer + "/" + e.Account
}

// barrier reports whether an event of type typ must wait for its
// account's earlier events.
func barrier(typ string) bool {
	return typ == events.CallStarted || typ == events.CallTransfer
}

// admit gives e its ticket, at dispatch, in delivery order. Events without
// an account get none.
func (s *sequencer) admit(e *events.Event) *ticket {
	key := accountKey(e)
	if key == "" {
		return nil
	}
	t := &ticket{key: key, done: make(chan struct{})}
	s.mu.Lock()
	set := s.inflight[key]
	if set == nil {
		set = map[*ticket]struct{}{}
		s.inflight[key] = set
	}
	if barrier(e.Type) {
		for p := range set {
			t.after = append(t.after, p)
		}
	}
	set[t] = struct{}{}
	s.mu.Unlock()
	return t
}

// wait blocks until the events t must follow are handled, or ctx ends.
func (t *ticket) wait(ctx context.Context) {
	if t == nil {
		return
	}
	for _, p := range t.after {
		select {
		case <-p.done:
		case <-ctx.Done():
			return
		}
	}
	t.after = nil
}

// finish records that t's event has been handled.
func (s *sequencer) finish(t *ticket) {
	if t == nil {
		return
	}
	close(t.done)
	s.mu.Lock()
	if set := s.inflight[t.key]; set != nil {
		delete(set, t)
		if len(set) == 0 {
			delete(s.inflight, t.key)
		}
	}
	s.mu.Unlock()
}

// inFlight is the number of accounts with events in flight (tests).
func (s *sequencer) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}
