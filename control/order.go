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

// sequencer tracks the events of each account in flight. Each account
// numbers its tickets in dispatch order and keeps a low-water mark, the
// lowest number not yet handled: a barrier numbered n may go once the mark
// reaches n. Admitting and finishing cost O(1) however many events of one
// account are in flight (a receptionist's phone under overload can have
// thousands; copying them into every barrier was quadratic).
type sequencer struct {
	mu       sync.Mutex
	accounts map[string]*account
}

// account is the order of one phone's events in flight.
type account struct {
	next    uint64              // the number of the next ticket
	low     uint64              // the lowest number not yet finished
	done    map[uint64]struct{} // finished numbers above low
	waiting []*ticket           // barriers not yet released, by number
}

// ticket is one event's place in its account's order.
type ticket struct {
	key string
	n   uint64
	// ready is closed when every earlier event of the account has been
	// handled; nil when the event waits for nothing.
	ready chan struct{}
	// then runs once ready (whenReady), guarded by sequencer.mu.
	then func()
}

func newSequencer() *sequencer {
	return &sequencer{accounts: map[string]*account{}}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil {
		a = &account{done: map[uint64]struct{}{}}
		s.accounts[key] = a
	}
	t := &ticket{key: key, n: a.next}
	a.next++
	if barrier(e.Type) && a.low < t.n {
		t.ready = make(chan struct{})
		a.waiting = append(a.waiting, t)
	}
	return t
}

// wait blocks until the events t must follow are handled, or ctx ends.
func (t *ticket) wait(ctx context.Context) {
	if t == nil || t.ready == nil {
		return
	}
	select {
	case <-t.ready:
	case <-ctx.Done():
	}
}

// whenReady reports whether t's event may be handled now; if not, fn
// runs (on the goroutine that finishes the last event t waits for) once it
// may.
func (t *ticket) whenReady(s *sequencer, fn func()) bool {
	if t == nil || t.ready == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-t.ready:
		return true
	default:
	}
	t.then = fn
	return false
}

// finish records that t's event has been handled.
func (s *sequencer) finish(t *ticket) {
	if t == nil {
		return
	}
	var released []func()
	s.mu.Lock()
	a := s.accounts[t.key]
	if a == nil {
		s.mu.Unlock()
		return
	}
	if t.n != a.low {
		a.done[t.n] = struct{}{}
		s.mu.Unlock()
		return
	}
	a.low++
	for {
		if _, ok := a.done[a.low]; !ok {
			break
		}
		delete(a.done, a.low)
		a.low++
	}
	for len(a.waiting) > 0 && a.waiting[0].n <= a.low {
		w := a.waiting[0]
		close(w.ready)
		if w.then != nil {
			released = append(released, w.then)
			w.then = nil
		}
		a.waiting[0] = nil
		a.waiting = a.waiting[1:]
	}
	if a.low == a.next {
		delete(s.accounts, t.key)
	}
	s.mu.Unlock()
	for _, fn := range released {
		fn()
	}
}

// inFlight is the number of accounts with events in flight (tests).
func (s *sequencer) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accounts)
}
