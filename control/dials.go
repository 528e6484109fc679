package control

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

// Pending dials (state.Dial): what the control plane waits for after it
// had the core dial a leg for another one, whatever the purpose: an
// extension call, an outside call, an automatic return, an API retrieval.
// Every dial is recorded before the core is asked, under a name the core
// puts on the new leg's events (events.Event.Dial). Outcomes come through
// HandleEvent like every other event, before the event's generic handling,
// on the worker of the conversation (the dialed leg is linked to the leg
// it rings for), so they are seen in order. The deadline is kept in a
// deadline.Scheduler keyed by the dial's name.
//
// The rule for every outbound leg: one whose dial is no longer pending
// (cancelled before the core named it, lost to a retrieval, given up) has
// nobody waiting for it and is hung up.

// dialMargin is how long past its ring time a dial's outcome is waited
// for (the core's own timeout ends it first).
const dialMargin = 30 * time.Second

// dialNamer names a Control's dials: a prefix drawn at start, so that a
// leg dialed by an earlier run (or another node's control plane) is never
// taken for one of this run's, and a counter.
type dialNamer struct {
	prefix string
	n      atomic.Uint64
}

func newDialNamer(r *rand.Rand) dialNamer {
	return dialNamer{prefix: "d" + strconv.FormatUint(r.Uint64()>>16, 36) + "-"}
}

func (n *dialNamer) next() string {
	return n.prefix + strconv.FormatUint(n.n.Add(1), 36)
}

// mine reports whether id names a dial of this run.
func (n *dialNamer) mine(id string) bool {
	return strings.HasPrefix(id, n.prefix)
}

// addDial records d under a new name, with its deadline ring after now
// (plus the margin).
func (c *Control) addDial(d *state.Dial, ring time.Duration) error {
	d.ID = c.dialIDs.next()
	if err := c.store.AddDial(d); err != nil {
		return err
	}
	c.dialDeadlines.Schedule(d.ID, c.now().Add(ring+dialMargin))
	return nil
}

// endDial takes the outcome of dial id: it reports the dial if this caller
// is the one that ended it.
func (c *Control) endDial(id string) (*state.Dial, bool) {
	d, err := c.store.EndDial(id)
	if err != nil {
		return nil, false
	}
	c.dialDeadlines.Cancel(id)
	return d, true
}

// dialStarted names the leg the core started for dial d (from the reply).
// A dial ended before that has no-one waiting: its leg is hung up when its
// first event shows it (handleDialEvent).
func (c *Control) dialStarted(d *state.Dial, leg string) {
	c.store.AdoptDialLeg(d.ID, leg)
}

// handleDialEvent takes the outcome of a pending dial from e, if e is
// one; it reports whether e is fully handled.
func (c *Control) handleDialEvent(ctx context.Context, e *events.Event) bool {
	if e.Type == events.CallEnded {
		if d := c.store.DialFor(e.Call); d != nil {
			c.dialerGone(ctx, d)
		}
	}
	if e.Direction != events.Outbound {
		return false
	}
	d := c.dialOf(e)
	if d == nil {
		return c.orphan(ctx, e)
	}
	switch e.Type {
	case events.CallAnswered:
		c.dialAnswered(ctx, d, e)
		return true
	case events.CallDialFailed:
		c.store.DeleteChannel(e.Call)
		c.dialFailed(ctx, d, e)
		return true
	case events.CallEnded:
		// Ended before an answer without a dial_failed: a failure too;
		// onEnded forgets the leg.
		c.dialFailed(ctx, d, e)
	}
	return false
}

// dialOf finds the pending dial an outbound leg's event is about: by the
// dial's name, by the leg, or as the first sign of the leg a dial for its
// caller waits to hear of.
func (c *Control) dialOf(e *events.Event) *state.Dial {
	if e.Dial != "" {
		return c.store.AdoptDialLeg(e.Dial, e.Call)
	}
	if d := c.store.DialByLeg(e.Call); d != nil {
		return d
	}
	if e.Type != events.CallStarted || e.DialedFor == "" {
		// Other legs' events name the caller too (its old leg ending after
		// a park): only a new leg can be the one a dial waits for.
		return nil
	}
	if d := c.store.DialFor(e.DialedFor); d != nil && d.Leg == "" {
		return c.store.AdoptDialLeg(d.ID, e.Call)
	}
	return nil
}

// orphan hangs up an outbound leg nobody waits for: one this run dialed
// whose dial has ended, or one answering for a leg that is parked or
// talks to someone else already (a late answer). It reports whether e is
// fully handled.
func (c *Control) orphan(ctx context.Context, e *events.Event) bool {
	switch e.Type {
	case events.CallStarted:
		if c.dialIDs.mine(e.Dial) {
			c.log.Info("dial no longer pending; hanging up its leg", "customer", e.Customer, "leg", e.Call, "dial", e.Dial)
			c.hangup(ctx, e.Customer, e.Call) // CANCEL
		}
		return false // recorded like any leg until it ends
	case events.CallAnswered:
		late := c.dialIDs.mine(e.Dial)
		if !late && e.DialedFor != "" {
			x := c.store.Channel(e.DialedFor)
			late = x != nil && (c.parked(x) || x.Peer != "" && x.Peer != e.Call && c.peerOf(x) != nil)
		}
		if !late {
			return false // a leg of an earlier run: recorded as it is
		}
		c.log.Info("late answer; hanging up", "customer", e.Customer, "leg", e.Call, "for", e.DialedFor)
		c.hangup(ctx, e.Customer, e.Call)
		return true
	}
	return false
}

// dialAnswered: the phone dial d rang took the call, and the core has
// bridged it with the leg it was for. One transaction ends the dial and
// pairs the legs (and takes a return's call off parking): an answer that
// loses it is hung up, never a ghost call.
func (c *Control) dialAnswered(ctx context.Context, d *state.Dial, e *events.Event) {
	d, rec, err := c.store.AnswerDial(d.ID, e.Call)
	if err != nil {
		c.log.Info("dial answered too late; hanging up", "customer", e.Customer, "leg", e.Call, "for", e.DialedFor, "err", err)
		c.hangup(ctx, e.Customer, e.Call)
		return
	}
	c.dialDeadlines.Cancel(d.ID)
	switch d.Purpose {
	case state.DialReturn:
		c.returnAnswered(ctx, d, rec)
	case state.DialRetrieval:
		rec := d.Park
		c.metrics.retrieves.WithLabelValues(rec.Customer).Inc()
		c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
		c.log.Info("parked call retrieved", "customer", rec.Customer, "key", rec.Key, "parked", rec.Channel, "leg", e.Call, "via", "api")
		park := rec.Event()
		park.By = d.Target
		c.publish(events.CallRetrieved, rec.Customer, rec.Channel, park)
	}
}

// dialFailed: the phone or trunk dial d rang did not take the call (e is
// its dial_failed, or its end before an answer).
func (c *Control) dialFailed(ctx context.Context, d *state.Dial, e *events.Event) {
	d, ok := c.endDial(d.ID)
	if !ok {
		return
	}
	switch d.Purpose {
	case state.DialExtension, state.DialOutside:
		c.callFailed(ctx, d, e)
	case state.DialReturn:
		if e.Type == events.CallDialFailed {
			c.returnDialFailed(ctx, d, e.Code)
		}
		// Gone without a word: the next return comes when due.
	case state.DialRetrieval:
		log := c.log.With("customer", d.Customer, "key", d.Park.Key, "to", d.Target, "via", "api")
		log.Info("retrieval not answered, call back in parking", "parked", d.For, "code", e.Code)
		c.giveBack(d.Park, log)
	}
}

// dialerGone: the leg dial d rings for hung up; the ringing leg is
// cancelled, and a retrieval's parked caller is abandoned (a return's is
// abandoned by onEnded, which ends its park).
func (c *Control) dialerGone(ctx context.Context, d *state.Dial) {
	d, ok := c.endDial(d.ID)
	if !ok {
		return
	}
	if d.Leg != "" {
		c.hangup(ctx, d.Customer, d.Leg) // CANCEL
	}
	if d.Purpose != state.DialRetrieval {
		return
	}
	rec := d.Park
	c.metrics.abandons.WithLabelValues(rec.Customer).Inc()
	c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
	c.log.Info("parked call abandoned while retrieving", "customer", rec.Customer, "parked", rec.Channel)
	c.publish(events.CallAbandoned, rec.Customer, rec.Channel, rec.Event())
}

// dialExpired: nothing was heard of a pending dial within its deadline;
// it is no longer waited for.
func (c *Control) dialExpired(id string) {
	d, err := c.store.EndDial(id)
	if err != nil {
		return
	}
	c.log.Info("dial outcome unknown; giving up watching", "customer", d.Customer, "purpose", d.Purpose, "for", d.For, "leg", d.Leg)
}
