package control

import (
	"context"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

// Pending dials (state.Dial): what the control plane waits for after it
// had the core dial a leg for another one. Their outcomes come through
// HandleEvent like every other event, after the event's own handling, on
// the worker of the conversation (the dialed leg is linked to the leg it
// rings for), so they are seen in order; the deadline is kept in a
// deadline.Scheduler keyed by the leg dialed for.

// handleDialEvent takes the outcome of a pending dial from e, if e is one.
func (c *Control) handleDialEvent(ctx context.Context, e *events.Event) {
	if e.Type == events.CallEnded && c.store.DialFor(e.Call) != nil {
		c.dialerGone(e)
		return
	}
	if e.Direction != events.Outbound {
		return
	}
	d := c.store.DialByLeg(e.Call)
	if d == nil && e.DialedFor != "" {
		if x := c.store.DialFor(e.DialedFor); x != nil && x.Leg == "" {
			d = c.store.AdoptDialLeg(e.DialedFor, e.Call) // it outran the dial's reply
		}
	}
	if d == nil {
		return
	}
	switch e.Type {
	case events.CallAnswered:
		c.dialAnswered(ctx, d, e)
	case events.CallDialFailed, events.CallEnded:
		c.dialFailed(d, e)
	}
}

// dialAnswered: the phone a retrieval rang took the call; the core has
// bridged it with the parked caller.
func (c *Control) dialAnswered(_ context.Context, d *state.Dial, e *events.Event) {
	if _, err := c.store.EndDial(d.For); err != nil {
		return // the caller hung up or the deadline passed first
	}
	c.dialDeadlines.Cancel(d.For)
	rec := d.Park
	_ = c.store.Connect(rec.Channel, e.Call)
	c.metrics.retrieves.WithLabelValues(rec.Customer).Inc()
	c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
	c.log.Info("parked call retrieved", "customer", rec.Customer, "key", rec.Key, "parked", rec.Channel, "leg", e.Call, "via", "api")
	park := rec.Event()
	park.By = d.Target
	c.publish(events.CallRetrieved, rec.Customer, rec.Channel, park)
}

// dialFailed: the phone a retrieval rang did not take the call; it goes
// back to its spot.
func (c *Control) dialFailed(d *state.Dial, e *events.Event) {
	if _, err := c.store.EndDial(d.For); err != nil {
		return
	}
	c.dialDeadlines.Cancel(d.For)
	c.store.UpdateChannel(d.For, func(ch *state.Channel) {
		if ch.Dialing == e.Call {
			ch.Dialing = ""
		}
	})
	log := c.log.With("customer", d.Customer, "key", d.Park.Key, "to", d.Target, "via", "api")
	log.Info("retrieval not answered, call back in parking", "parked", d.For, "code", e.Code)
	c.giveBack(d.Park, log)
}

// dialerGone: the leg a dial rang for hung up; a retrieval's parked caller
// is abandoned (onEnded cancels the ringing leg).
func (c *Control) dialerGone(e *events.Event) {
	d, err := c.store.EndDial(e.Call)
	if err != nil {
		return
	}
	c.dialDeadlines.Cancel(d.For)
	rec := d.Park
	c.metrics.abandons.WithLabelValues(rec.Customer).Inc()
	c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
	c.log.Info("parked call abandoned while retrieving", "customer", rec.Customer, "parked", rec.Channel)
	c.publish(events.CallAbandoned, rec.Customer, rec.Channel, rec.Event())
}

// dialExpired: nothing was heard of a pending dial within its deadline;
// it is no longer waited for.
func (c *Control) dialExpired(forLeg string) {
	d, err := c.store.EndDial(forLeg)
	if err != nil {
		return
	}
	c.log.Info("retrieval outcome unknown; giving up watching", "customer", d.Customer, "parked", d.For, "leg", d.Leg)
}
