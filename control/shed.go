package control

import "github.com/callpark/callpark/events"

// Load shedding. The control plane is where calls queue when the machine
// is past its limit, and only it knows which new call adds work and which
// one finishes it: a retrieval (or a park) takes a parked call off the
// books, a new extension call is a new conversation to carry. So while its
// event queues lag by more than Config.ShedAfter, new extension and trunk
// calls are refused with 503 at once, and retrievals, parks and everything
// already in progress go on. (The core's own bounds — legs, file
// descriptors, NATS, a decision timeout — are the last resort behind this.)
//
// "Lag" is how long the conversation that has waited longest for a worker
// has waited (conversations.go): the whole pool is behind by that much.
// An event being handled does not count, nor does one set aside for its
// phone's earlier events: one slow command or one busy phone is not a
// backlog. A new call whose own start event waited longer than ShedAfter
// is refused too: it is late already.

// shed reports whether the new call of e should be refused for overload.
func (c *Control) shed(e *events.Event) bool {
	cs := c.convs.Load()
	if c.shedAfter <= 0 || cs == nil {
		return false
	}
	now := c.now()
	late := !e.Time.IsZero() && now.Sub(e.Time) > c.shedAfter
	if w := cs.oldestWaiting(); late || (!w.IsZero() && now.Sub(w) > c.shedAfter) {
		c.metrics.shed.Inc()
		return true
	}
	return false
}
