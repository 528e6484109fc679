package control

import (
	"context"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// Automatic retrieval ("auto return"): a call parked longer than the
// customer's auto_retrieve.after (a slot's timeout for slot parks) rings
// back the account that parked it.
//
// The deadline is Parked.Due, scheduled in one deadline.Scheduler keyed by
// the parked leg's id. When it comes, the core dials every registered
// contact of the parker with Bridge and Call = the parked leg: the caller
// keeps its music while the phone rings, and the core bridges the two when
// the phone answers. The return is a pending dial (state.DialReturn,
// dials.go); the park record stays in the table while it rings, so a
// manual retrieval may still win. The answer takes the park and ends the
// dial in one transaction (state.Store.AnswerDial); a retrieval or
// abandon ends the park first, which ends the dial (onParkChange) and
// hangs up its leg.
//
// When the return fails (busy, no answer), the parker's answering mode
// decides: ring (try again after the timeout, at most auto_retrieve.attempts
// returns, then goodbye), forward (every return rings forward_to instead of
// the parker), ring_then_forward (each return rings the parker, then
// forward_to).

// PromptGoodbye ends a call whose returns all failed.
const PromptGoodbye = "goodbye"

// Reasons of call.return_failed.
const (
	ReasonBusy        = "busy"
	ReasonNoAnswer    = "no_answer"
	ReasonUnreachable = "unreachable" // no such account to ring, or the core refused the dial
	ReasonFailed      = "failed"
	ReasonGaveUp      = "gave_up" // the last event: the caller is hung up
)

// onParkChange is the state.Store.OnParked hook: a park with a due time is
// scheduled, an unpark cancels the deadline and any return still ringing.
func (c *Control) onParkChange(p *state.Parked, parked bool) {
	if c.persist != nil {
		c.persist.dirty(p)
	}
	if parked {
		if !p.Due.IsZero() {
			c.returnsDue.Schedule(p.Channel, p.Due)
		}
		return
	}
	c.returnsDue.Cancel(p.Channel)
	// Retrieved by hand, abandoned or given up while the return rings: the
	// return is no longer pending. (A return that answered took the park
	// itself, ending its dial in the same transaction.)
	d := c.store.DialFor(p.Channel)
	if d == nil || d.Purpose != state.DialReturn {
		return
	}
	if d, ok := c.endDial(d.ID); ok && d.Leg != "" {
		c.log.Info("automatic return cancelled", "customer", p.Customer, "key", p.Key, "leg", d.Leg)
		// Sent at once, before whatever the retrieval does next, but with a
		// context bounded by Run's lifetime: an observer has none of its own.
		// A leg not named yet is hung up when it shows (dials.go).
		ctx, cancel := c.bounded()
		c.hangup(ctx, d.Customer, d.Leg) // CANCEL
		cancel()
	}
}

// fireReturn is the scheduler's callback: the return starts on its own
// goroutine so the timer loop never waits for the core.
func (c *Control) fireReturn(ctx context.Context, channel string) {
	c.tasks.Go(func() { c.startReturn(ctx, channel) })
}

// startReturn starts the automatic return of the call parked on leg channel,
// if it is still parked and due.
func (c *Control) startReturn(ctx context.Context, channel string) {
	p := c.store.ParkedByChannel(channel)
	if p == nil || p.Due.IsZero() || !c.owns(p.Customer) {
		return
	}
	if now := c.now(); p.Due.After(now) {
		c.returnsDue.Schedule(channel, p.Due) // moved meanwhile
		return
	}
	cust := c.customer(p.Customer)
	if cust == nil || !cust.Features.AutoRetrieve.Enabled {
		return // switched off by a reload: the call stays parked
	}
	if c.store.DialFor(channel) != nil {
		return // a return rings already
	}
	// Count the return and push the deadline past its ring time, so that a
	// control plane restarted while it rings does not ring twice at once.
	p, err := c.store.UpdateParked(channel, func(x *state.Parked) {
		x.Returns++
		x.Due = c.now().Add(c.ringTime(cust) + c.returnWait(cust, x))
	})
	if err != nil {
		return
	}
	if c.persist != nil {
		c.persist.dirty(p)
	}
	acct := cust.Account(p.Parker)
	target, forward := p.Parker, false
	if acct != nil && acct.AnsweringMode == dialplans.AnswerForward && acct.ForwardTo != "" {
		target, forward = acct.ForwardTo, true
	}
	c.log.Info("automatic return", "customer", p.Customer, "key", p.Key, "parked", channel, "target", target, "attempt", p.Returns)
	c.dialReturn(ctx, cust, p, target, forward)
}

// ringTime is how long a return rings.
func (c *Control) ringTime(cust *dialplans.Customer) (d time.Duration) {
	d = cust.Features.DialTimeout
	if d <= 0 {
		d = dialplans.DefaultDialTimeout
	}
	return d
}

// returnWait is how long a call parked as p waits between returns.
func (c *Control) returnWait(cust *dialplans.Customer, p *state.Parked) time.Duration {
	if p.Kind == state.KindSlot {
		return cust.SlotTimeout(p.Number)
	}
	if ar := cust.Features.AutoRetrieve.After; ar > 0 {
		return ar
	}
	return dialplans.DefaultRetrieveWait
}

// dialReturn rings target (an account of cust, or the forward_to number)
// for the call parked as p.
func (c *Control) dialReturn(ctx context.Context, cust *dialplans.Customer, p *state.Parked, target string, forward bool) {
	d := &state.Dial{For: p.Channel, Customer: p.Customer, Purpose: state.DialReturn, Target: target, Forward: forward}
	if forward {
		c.publishReturn(events.CallForwarded, p, target, "", 0)
	}
	var uri string
	if cust.Account(target) == nil {
		// forward_to names an external number: out through the customer's
		// trunk, when it has one that names a host.
		u, ok := cust.OutboundURI(target)
		if !forward || !ok {
			c.returnFailed(ctx, d, ReasonUnreachable, 0)
			return
		}
		uri = u
	}
	// Recorded before the core is asked: the new leg's events may outrun
	// the reply.
	if err := c.addDial(d, c.ringTime(cust)); err != nil {
		return // a return rings already
	}
	ar := cust.Features.AutoRetrieve
	cmd := &events.Command{
		Op:        events.OpDial,
		Call:      p.Channel,
		Account:   target,
		From:      returnedFrom(p.Party),
		URI:       uri,
		TimeoutMs: int(c.ringTime(cust).Milliseconds()),
		Bridge:    true,
		Dial:      d.ID,
	}
	if ar.Ring == dialplans.RingDistinctive {
		cmd.AlertInfo = ar.AlertInfo
		if cmd.AlertInfo == "" {
			cmd.AlertInfo = dialplans.DefaultAlertInfo
		}
	}
	if uri != "" {
		cmd.Account = ""
	}
	r, err := c.do(ctx, p.Customer, cmd)
	if err != nil {
		if _, ok := c.endDial(d.ID); !ok {
			return // the park ended meanwhile
		}
		if notFound(err) {
			// The parked leg is gone (its call.ended may have been missed
			// across a restart): forget the park.
			if gone, err := c.store.UnparkChannel(p.Channel); err == nil {
				c.publish(events.CallAbandoned, gone.Customer, gone.Channel, gone.Event())
			}
			c.store.DeleteChannel(p.Channel)
			return
		}
		c.returnFailed(ctx, d, ReasonUnreachable, 0)
		return
	}
	c.dialStarted(d, r.Call)
}

// returnedFrom is the From of a return: the display name says it is a
// returned parked call and who waits; the user is the caller's number.
func returnedFrom(party events.Party) events.Party {
	who := party.Display
	if who == "" {
		who = party.User
	}
	return events.Party{Display: "Parked: " + who, User: party.User}
}

// returnDialFailed: the phone a return rang did not take the call (code
// is its SIP status).
func (c *Control) returnDialFailed(ctx context.Context, d *state.Dial, code int) {
	reason := ReasonFailed
	switch code {
	case 486, 600:
		reason = ReasonBusy
	case 480, 408:
		reason = ReasonNoAnswer
	case 487:
		// Cancelled: the caller hung up (its call.ended, on another
		// worker, abandons the park) or the core gave up on it. Not the
		// parker's doing: try again later, quietly.
		c.retryLater(d.For)
		return
	}
	c.returnFailed(ctx, d, reason, code)
}

// returnAnswered: the phone took return d; the core has bridged it with
// the caller, and the answer took rec off parking.
func (c *Control) returnAnswered(ctx context.Context, d *state.Dial, rec *state.Parked) {
	c.metrics.retrieves.WithLabelValues(rec.Customer).Inc()
	c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
	c.log.Info("parked call returned", "customer", rec.Customer, "key", rec.Key, "parked", rec.Channel, "to", d.Target)
	park := rec.Event()
	park.By = d.Target
	if !d.Forward {
		c.metrics.returns.WithLabelValues(rec.Customer, "answered").Inc()
		c.publish(events.CallReturned, rec.Customer, rec.Channel, park)
	}
	c.publish(events.CallRetrieved, rec.Customer, rec.Channel, park)
	// The caller's phone shows who took the call back (the answering
	// phone already saw the caller in the return's From).
	who := events.Party{User: d.Target}
	if cust := c.customer(rec.Customer); cust != nil {
		if a := cust.Account(d.Target); a != nil {
			who.Display = a.Name
		}
	}
	c.tellIdentity(ctx, rec.Customer, rec.Channel, who)
}

// returnFailed: a return reached nobody. The parker's answering mode says
// what next: forward now, try again later, or give up.
func (c *Control) returnFailed(ctx context.Context, d *state.Dial, reason string, code int) {
	p := c.store.ParkedByChannel(d.For)
	if p == nil {
		return // retrieved or abandoned meanwhile
	}
	c.publishReturn(events.CallReturnFailed, p, d.Target, reason, code)
	cust := c.customer(p.Customer)
	if cust == nil {
		return
	}
	acct := cust.Account(p.Parker)
	if !d.Forward && acct != nil && acct.AnsweringMode == dialplans.AnswerRingThenForward && acct.ForwardTo != "" {
		c.dialReturn(ctx, cust, p, acct.ForwardTo, true)
		return
	}
	attempts := cust.Features.AutoRetrieve.Attempts
	if attempts <= 0 {
		attempts = dialplans.DefaultAttempts
	}
	if p.Returns >= attempts {
		rec, err := c.store.UnparkChannel(p.Channel)
		if err != nil {
			return // a retrieval won at the last moment
		}
		c.log.Info("automatic return gave up", "customer", rec.Customer, "key", rec.Key, "parked", rec.Channel, "returns", rec.Returns)
		c.publishReturn(events.CallReturnFailed, rec, "", ReasonGaveUp, 0)
		c.do(ctx, rec.Customer, &events.Command{Op: events.OpPlay, Call: rec.Channel, Prompts: []string{PromptGoodbye}, HangupAfter: true})
		return
	}
	c.retryLater(p.Channel)
}

// retryLater schedules the next return of the call parked on leg channel
// one timeout from now.
func (c *Control) retryLater(channel string) {
	p := c.store.ParkedByChannel(channel)
	if p == nil {
		return
	}
	cust := c.customer(p.Customer)
	if cust == nil {
		return
	}
	p, err := c.store.UpdateParked(channel, func(x *state.Parked) {
		x.Due = c.now().Add(c.returnWait(cust, x))
	})
	if err != nil {
		return
	}
	if c.persist != nil {
		c.persist.dirty(p)
	}
	c.returnsDue.Schedule(p.Channel, p.Due)
}

// publishReturn publishes an automatic-retrieval event about park p;
// account is who was rung.
func (c *Control) publishReturn(typ string, p *state.Parked, account, reason string, code int) {
	switch typ {
	case events.CallReturnFailed:
		c.metrics.returns.WithLabelValues(p.Customer, reason).Inc()
	case events.CallForwarded:
		c.metrics.returns.WithLabelValues(p.Customer, "forwarded").Inc()
	}
	e := c.appEvent(typ, p.Customer, p.Channel, p.Event())
	e.Account, e.Reason, e.Code = account, reason, code
	c.bus.Publish(e)
}
