package pbxtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

// Recorder keeps every event seen on a subject, for assertions that read
// like a call script:
//
//	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
//	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"), pbxtest.Account("202"))
type Recorder struct {
	mu     sync.Mutex
	events []*events.Event
	taken  map[*events.Event]bool // returned by Next
	notify chan struct{}
}

// Record subscribes to subject on bus.
func Record(bus *events.Bus, subject string) (*Recorder, error) {
	r := &Recorder{notify: make(chan struct{}, 1), taken: map[*events.Event]bool{}}
	_, err := bus.SubscribeEvents(subject, func(e *events.Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
	})
	return r, err
}

// Match narrows the events a wait is for.
type Match func(*events.Event) bool

// Park matches events about the call parked on number (a slot, an
// extension or a random number; "" any).
func Park(number string) Match {
	return func(e *events.Event) bool { return e.Park != nil && (number == "" || e.Park.Number == number) }
}

// Slot matches slot.busy and slot.free of slot number.
func Slot(number string) Match {
	return func(e *events.Event) bool { return e.Park != nil && e.Slot == number }
}

// Customer matches events of one customer.
func Customer(name string) Match { return func(e *events.Event) bool { return e.Customer == name } }

// Account matches events of one account's leg.
func Account(ext string) Match { return func(e *events.Event) bool { return e.Account == ext } }

// Leg matches events of one leg (by its id).
func Leg(id string) Match { return func(e *events.Event) bool { return e.Call == id } }

// Reason matches events with a reason (call.ended, call.return_failed).
func Reason(why string) Match { return func(e *events.Event) bool { return e.Reason == why } }

// All returns a copy of the events so far.
func (r *Recorder) All() []*events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*events.Event(nil), r.events...)
}

// Of returns the events so far of type typ that match every m, in order.
func (r *Recorder) Of(typ string, ms ...Match) []*events.Event {
	var out []*events.Event
	for _, e := range r.All() {
		if matches(e, typ, ms) {
			out = append(out, e)
		}
	}
	return out
}

// Count is the number of events so far of type typ that match every m.
func (r *Recorder) Count(typ string, ms ...Match) int { return len(r.Of(typ, ms...)) }

// Next returns the first event of type typ matching every m that Next has
// not returned before, waiting up to 5 s for it: a script that waits for
// two parks on 333 in a row gets the first, then the second.
func (r *Recorder) Next(t testing.TB, typ string, ms ...Match) *events.Event {
	t.Helper()
	return r.NextWithin(t, 5*time.Second, typ, ms...)
}

// NextWithin is Next with another bound on the wait.
func (r *Recorder) NextWithin(t testing.TB, within time.Duration, typ string, ms ...Match) *events.Event {
	t.Helper()
	e := r.await(within, func() *events.Event {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.events {
			if !r.taken[e] && matches(e, typ, ms) {
				r.taken[e] = true
				return e
			}
		}
		return nil
	})
	if e == nil {
		t.Fatalf("no %s event within %s (seen: %s)", typ, within, r.summary())
	}
	return e
}

// Nth waits up to within for the n-th event (1-based, counted from the
// start) of type typ matching every m, and returns it.
func (r *Recorder) Nth(t testing.TB, within time.Duration, typ string, n int, ms ...Match) *events.Event {
	t.Helper()
	e := r.await(within, func() *events.Event {
		seen := 0
		for _, e := range r.All() {
			if matches(e, typ, ms) {
				if seen++; seen == n {
					return e
				}
			}
		}
		return nil
	})
	if e == nil {
		t.Fatalf("no %s #%d within %s (seen: %s)", typ, n, within, r.summary())
	}
	return e
}

// Wait returns the first event (from the start, returned before or not)
// matching match, waiting up to timeout; what names it in the failure.
func (r *Recorder) Wait(t testing.TB, timeout time.Duration, what string, match func(*events.Event) bool) *events.Event {
	t.Helper()
	e := r.await(timeout, func() *events.Event {
		for _, e := range r.All() {
			if match(e) {
				return e
			}
		}
		return nil
	})
	if e == nil {
		t.Fatalf("no %s event within %s", what, timeout)
	}
	return e
}

// await polls find until it returns an event or within passes.
func (r *Recorder) await(within time.Duration, find func() *events.Event) *events.Event {
	deadline := time.After(within)
	for {
		if e := find(); e != nil {
			return e
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			return find()
		}
	}
}

// summary lists the types of the last events, for a failure message.
func (r *Recorder) summary() string {
	all := r.All()
	if len(all) > 20 {
		all = all[len(all)-20:]
	}
	var b strings.Builder
	for i, e := range all {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Type)
		if e.Park != nil {
			fmt.Fprintf(&b, "(%s)", e.Park.Number)
		}
	}
	return b.String()
}

func matches(e *events.Event, typ string, ms []Match) bool {
	if e.Type != typ {
		return false
	}
	for _, m := range ms {
		if !m(e) {
			return false
		}
	}
	return true
}

// Type matches events of one type (and customer, when not empty).
func Type(typ, customer string) func(*events.Event) bool {
	return func(e *events.Event) bool {
		return e.Type == typ && (customer == "" || e.Customer == customer)
	}
}

// WaitLampKnown waits until the control plane has told the core the state
// of a slot entity of customer (it does so at start).
func (p *PBX) WaitLampKnown(t testing.TB, customer, entity string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, known := p.Core().Presence().Lookup(customer, entity); known {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the core never learnt the state of %s@%s", entity, customer)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
