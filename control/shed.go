package control

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/callpark/callpark/events"
)

// Load shedding. The control plane is where calls queue when the machine
// is past its limit, and only it knows which new call adds work and which
// one finishes it: a retrieval (or a park) takes a parked call off the
// books, a new extension call is a new conversation to carry. So while its
// event queues lag by more than Config.ShedAfter, new extension and trunk
// calls are refused with 503 at once, and retrievals, parks and everything
// already in progress go on. (The core's own bounds — legs, file
// descriptors, NATS, a decision timeout — are the last resort behind this.)
//
// "Lag" is the typical queue's, not the worst one's: a worker waits for
// each command it sends, so one worker held up (a phone slow to ACK an
// answer, a command that times out) makes its own queue old while the
// other workers keep up. Measured by the oldest queue, that one call shed
// every new call for as long as it lasted, and under load a few such calls
// at any moment shed them all: at 700 cycles/s offered, 98 % of calls were
// refused with the machine a sixth busy. A new call whose own start event
// waited longer than ShedAfter is refused too: it is late already.

// backlog tracks how far behind the workers are.
type backlog struct {
	queues []*queue
}

// delay is how far behind the workers typically are: the median over the
// queues of the age of each one's oldest waiting event (zero for a queue
// with nothing waiting).
func (b *backlog) delay(now time.Time) time.Duration {
	lags := make([]time.Duration, len(b.queues))
	for i, q := range b.queues {
		if t := q.oldest(); !t.IsZero() {
			lags[i] = now.Sub(t)
		}
	}
	slices.Sort(lags)
	return lags[(len(lags)-1)/2] // more than half behind
}

// oldest is the time of the oldest event waiting in q.
func (q *queue) oldest() time.Time {
	if ns := q.current.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	if j, ok := q.box.First(); ok {
		return j.e.Time
	}
	return time.Time{}
}

// inProgress records the oldest event of the batch a worker has taken
// out of its queue and not yet started (nil when none).
type inProgress struct{ atomic.Int64 }

func (p *inProgress) set(e *events.Event) {
	if e == nil || e.Time.IsZero() {
		p.Store(0)
		return
	}
	p.Store(e.Time.UnixNano())
}

// shed reports whether the new call of e should be refused for overload.
func (c *Control) shed(e *events.Event) bool {
	b := c.backlog.Load()
	if c.shedAfter <= 0 || b == nil {
		return false
	}
	now := c.now()
	late := !e.Time.IsZero() && now.Sub(e.Time) > c.shedAfter
	if late || b.delay(now) > c.shedAfter {
		c.metrics.shed.Inc()
		return true
	}
	return false
}
