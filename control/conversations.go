package control

import (
	"context"
	"sync"
	"time"

	"github.com/callpark/callpark/events"
)

// Conversations. The events of one conversation (a leg and the legs
// dialed for it: events.Event.Linked) are handled one at a time, in the
// order they happened, and different conversations in parallel by a pool
// of workers. A conversation whose next event must wait for its phone's
// earlier events (order.go) is set aside until they are handled: it holds
// no worker meanwhile, and every other conversation goes on.
//
// Each worker used to own a fixed share of the conversations (by a hash of
// the key), and an event waiting for its phone held the worker and every
// conversation of its share; the events it waited for sat in other
// workers' queues behind their own waiting events. Under load most workers
// ended up waiting on each other (57 of 64 at 700 cycles/s offered) and
// new calls were shed with the machine a fifth idle.

// conversations schedules the conversations with events to handle.
// runqKeep is the largest run queue array kept once the queue is empty,
// and the most conversations whose map is kept once none is left.
const runqKeep = 4096

type conversations struct {
	seq *sequencer

	mu    sync.Mutex
	byKey map[string]*conversation
	// peak is the most conversations held since byKey was made.
	peak int
	// runq holds the conversations with an event to handle and no worker,
	// in the order they became so.
	runq    []*conversation
	head    int
	wake    *sync.Cond
	closing bool
}

// conversation is the queue of one conversation's events.
type conversation struct {
	key  string
	jobs []job // guarded by conversations.mu
	// scheduled: in runq, on a worker, or set aside waiting for a ticket.
	scheduled bool
	// ready is when it last entered runq (the backlog: shed.go).
	ready time.Time
}

// job is a queued event and its place in its account's order (order.go).
type job struct {
	e *events.Event
	t *ticket
}

// maxTurn bounds the events a worker handles for one conversation before
// it lets the others go first.
const maxTurn = 32

func newConversations(seq *sequencer) *conversations {
	cs := &conversations{seq: seq, byKey: map[string]*conversation{}}
	cs.wake = sync.NewCond(&cs.mu)
	return cs
}

// push queues e on its conversation, in dispatch order. Its ticket is
// taken in the same step, so that tickets and queues agree on the order.
func (cs *conversations) push(key string, e *events.Event) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return
	}
	c := cs.byKey[key]
	if c == nil {
		c = &conversation{key: key}
		cs.byKey[key] = c
		cs.peak = max(cs.peak, len(cs.byKey))
	}
	c.jobs = append(c.jobs, job{e: e, t: cs.seq.admit(e)})
	if !c.scheduled {
		c.scheduled = true
		cs.enqueueLocked(c)
	}
}

func (cs *conversations) enqueueLocked(c *conversation) {
	c.ready = time.Now()
	cs.runq = append(cs.runq, c)
	cs.wake.Signal()
}

// requeue puts a conversation set aside back in the run queue.
func (cs *conversations) requeue(c *conversation) {
	cs.mu.Lock()
	cs.enqueueLocked(c)
	cs.mu.Unlock()
}

// next waits for a conversation to run; nil once closed and drained.
func (cs *conversations) next() *conversation {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for cs.head == len(cs.runq) && !cs.closing {
		cs.wake.Wait()
	}
	if cs.head == len(cs.runq) {
		return nil
	}
	c := cs.runq[cs.head]
	cs.runq[cs.head] = nil
	cs.head++
	if cs.head == len(cs.runq) {
		cs.runq, cs.head = cs.runq[:0], 0
		if cap(cs.runq) > runqKeep {
			cs.runq = nil // a backlog gone: give its array back
		}
	} else if cs.head > 1024 && cs.head > len(cs.runq)/2 {
		cs.runq = append(cs.runq[:0], cs.runq[cs.head:]...)
		cs.head = 0
	}
	return c
}

// oldestWaiting is when the conversation that has waited longest for a
// worker started waiting (zero when none waits).
func (cs *conversations) oldestWaiting() time.Time {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.head == len(cs.runq) {
		return time.Time{}
	}
	return cs.runq[cs.head].ready
}

// close makes the workers return once the run queue is empty.
func (cs *conversations) close() {
	cs.mu.Lock()
	cs.closing = true
	cs.mu.Unlock()
	cs.wake.Broadcast()
}

// work runs conversations until closed; handle handles one event.
func (cs *conversations) work(ctx context.Context, handle func(*events.Event)) {
	for c := cs.next(); c != nil; c = cs.next() {
		if ctx.Err() != nil {
			continue // drain: what is left is dropped
		}
		cs.turn(c, handle)
	}
}

// turn handles c's events in order until it has none, must wait for its
// phone (set aside, requeued when ready), or has had its share.
func (cs *conversations) turn(c *conversation, handle func(*events.Event)) {
	for range maxTurn {
		cs.mu.Lock()
		if len(c.jobs) == 0 {
			c.scheduled = false
			delete(cs.byKey, c.key)
			if len(cs.byKey) == 0 && cs.peak > runqKeep {
				// A Go map keeps the room of its largest size.
				cs.byKey, cs.peak = map[string]*conversation{}, 0
			}
			cs.mu.Unlock()
			return
		}
		j := c.jobs[0]
		cs.mu.Unlock()
		if !j.t.whenReady(cs.seq, func() { cs.requeue(c) }) {
			return
		}
		cs.mu.Lock()
		c.jobs[0] = job{}
		c.jobs = c.jobs[1:]
		if len(c.jobs) == 0 {
			c.jobs = nil // let the backing array go
		}
		cs.mu.Unlock()
		handle(j.e)
		cs.seq.finish(j.t)
	}
	cs.requeue(c)
}
