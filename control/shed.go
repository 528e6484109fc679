package control

import (
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

// backlog tracks how far behind the workers are.
type backlog struct {
	queues []*queue
}

// delay is the age of the oldest event waiting to be handled, zero when
// nothing waits.
func (b *backlog) delay(now time.Time) time.Duration {
	var oldest time.Time
	for _, q := range b.queues {
		t := q.oldest()
		if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest)
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

// shed reports whether a new call should be refused for overload.
func (c *Control) shed() bool {
	b := c.backlog.Load()
	if c.shedAfter <= 0 || b == nil {
		return false
	}
	if d := b.delay(c.now()); d > c.shedAfter {
		c.metrics.shed.Inc()
		return true
	}
	return false
}
