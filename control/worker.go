package control

import (
	"context"
	"hash/fnv"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/mailbox"
)

// Workers. Events are spread over a fixed set of workers by order key
// (orderKey), each worker a goroutine draining its own queue. A new call
// or a transfer whose phone still has earlier events in flight elsewhere
// (its ticket is not ready, order.go) must not block its worker: the other
// conversations queued behind it on that worker, other customers' among
// them, would wait for a phone they have nothing to do with. Under a busy
// receptionist's load that turned the 64 workers into a single file (at
// 300 cycles/s of one account, 60 of them were blocked in a ticket's wait
// on average). So the worker sets such an event aside with the events of
// its conversation that come after it, goes on with the rest, and takes
// them up, in order, when the ticket is ready. A ticket only waits for
// events dispatched before it, none of which can be set aside behind it:
// no cycle.

// worker handles the events of one queue.
type worker struct {
	q      *queue
	handle func(job)
	// held: per order key, events set aside behind a ticket not yet
	// ready, in arrival order (the first is the one that waits).
	held map[string][]job
}

func newWorker(q *queue, handle func(job)) *worker {
	return &worker{q: q, handle: handle, held: map[string][]job{}}
}

// run handles the queue until it is closed or ctx ends.
func (w *worker) run(ctx context.Context) {
	w.q.run(ctx, func(j job) {
		if j.resume != "" {
			w.release(ctx, j.resume)
			return
		}
		k := orderKey(j.e)
		if held, ok := w.held[k]; ok {
			w.held[k] = append(held, j) // its conversation waits: so does it
			return
		}
		if !j.t.isReady() {
			w.hold(ctx, k, []job{j})
			return
		}
		w.handle(j)
	})
}

// hold sets jobs aside under k until the first one's ticket is ready; then
// a resume job comes through the queue.
func (w *worker) hold(ctx context.Context, k string, jobs []job) {
	w.held[k] = jobs
	t := jobs[0].t
	go func() {
		t.wait(ctx)
		w.q.push(job{resume: k}) // dropped if the queue closed meanwhile
	}()
}

// release handles the events held under k, in order, until one must wait
// again.
func (w *worker) release(ctx context.Context, k string) {
	jobs := w.held[k]
	delete(w.held, k)
	for i, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		if !j.t.isReady() {
			w.hold(ctx, k, jobs[i:])
			return
		}
		w.handle(j)
	}
}

// orderKey picks the worker of an event: its conversation's (the legs
// linked to the one that began it), so that the events of one leg, and of
// the legs dialed for it, are handled in the order they happened: "B
// answered" before "A holds", or A's hold would find B still ringing and
// B would get no music. Events of no leg (registrations) go by account.
// What one phone's legs in other conversations owe each other ("John
// holds" before "John dials *70") is the sequencer's job (order.go).
func orderKey(e *events.Event) string {
	if e.Linked != "" {
		return e.Linked
	}
	if e.Call != "" {
		return e.Call
	}
	return accountKey(e)
}

// workerOf picks the worker of a key.
func workerOf(call string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(call))
	return int(h.Sum32() % uint32(n))
}

// queue is one worker's unbounded FIFO of events: push never blocks, so the
// NATS delivery goroutine is never held up by a slow worker.
type queue struct {
	box *mailbox.Box[job]
	// current is the event being handled (shed.go).
	current inProgress
}

func newQueue() *queue { return &queue{box: mailbox.New[job]()} }

// job is a queued event and its place in its account's order (order.go),
// or, with resume set, the wake-up of the events a worker held for that
// order key.
type job struct {
	e      *events.Event
	t      *ticket
	resume string
}

func (q *queue) push(j job) { q.box.Put(j) }

// close makes run return once the queue is empty; idempotent.
func (q *queue) close() { q.box.Close() }

// run hands queued events to fn in order until the queue is closed, or ctx
// ends (what is left is dropped then).
func (q *queue) run(ctx context.Context, fn func(job)) {
	for {
		closed := q.box.Closed() // before Take: nothing put before Close is missed
		batch := q.box.Take()
		for i, j := range batch {
			if ctx.Err() != nil {
				return
			}
			// The batch is out of the queue: what waits now is the rest of
			// it. The event being handled does not count: one slow
			// command is not a backlog.
			var next *events.Event
			for _, later := range batch[i+1:] {
				if later.e != nil { // not a resume job
					next = later.e
					break
				}
			}
			q.current.set(next)
			fn(j)
		}
		q.current.set(nil)
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		select {
		case <-q.box.Wake():
		case <-ctx.Done():
			return
		}
	}
}
