package control

import (
	"context"
	"sync"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/deadline"
)

// Automatic retrieval ("auto return"): a call parked longer than the
// customer's auto_retrieve.after (a slot's timeout for slot parks) rings
// back the account that parked it.
//
// The deadline is Parked.Due, scheduled in one deadline.Scheduler keyed by
// the parked leg's id. When it comes, the core dials every registered
// contact of the parker with Bridge and Call = the parked leg: the caller
// keeps its music while the phone rings, and the core bridges the two when
// the phone answers. The park record stays in the table while the return
// rings, so a manual retrieval may still win; whoever removes the record
// first (ClaimParked for a manual retrieval, UnparkChannel here) gets the
// caller, and the loser's leg is hung up.
//
// When the return fails (busy, no answer), the parker's answering mode
// decides: ring (try again after the timeout, at most auto_retrieve.attempts
// returns, then goodbye), forward (every return rings forward_to instead of
// the parker), ring_then_forward (each return rings the parker, then
// forward_to).
//
// Lock order: returns.mu is a leaf; no core command or store write is made
// while it is held.

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

// ringBack is one automatic return leg in flight.
type ringBack struct {
	customer string
	parked   string // the parked leg
	leg      string // the outbound leg; "" until the core names it
	target   string // the account rung
	forward  bool   // target is the parker's forward_to
	// claiming: the leg answered and we are taking the park; an unpark
	// seen meanwhile is ours (or a manual retrieval that beat us, which we
	// learn from the claim).
	claiming bool
	// aborted: someone else got the caller; the leg must go.
	aborted bool
}

// returns tracks the automatic returns of a Control.
type returns struct {
	sched *deadline.Scheduler

	mu       sync.Mutex
	byParked map[string]*ringBack // the ringing return of a parked leg
	byLeg    map[string]*ringBack // every return leg not yet ended or won
}

func newReturns() *returns {
	return &returns{
		sched:    deadline.NewScheduler(),
		byParked: map[string]*ringBack{},
		byLeg:    map[string]*ringBack{},
	}
}

// onParkChange is the state.Store.OnParked hook: a park with a due time is
// scheduled, an unpark cancels the deadline and any return still ringing.
func (c *Control) onParkChange(p *state.Parked, parked bool) {
	if c.persist != nil {
		c.persist.dirty(p)
	}
	if parked {
		if !p.Due.IsZero() {
			c.returns.sched.Schedule(p.Channel, p.Due)
		}
		return
	}
	c.returns.sched.Cancel(p.Channel)
	r := c.returns
	r.mu.Lock()
	rb := r.byParked[p.Channel]
	if rb == nil || rb.claiming {
		r.mu.Unlock()
		return
	}
	// Retrieved by hand, abandoned or given up while the return rings.
	delete(r.byParked, p.Channel)
	rb.aborted = true
	leg := rb.leg
	r.mu.Unlock()
	if leg != "" {
		c.log.Info("automatic return cancelled", "customer", p.Customer, "key", p.Key, "leg", leg)
		// Sent at once, before whatever the retrieval does next, but with a
		// context bounded by Run's lifetime: an observer has none of its own.
		ctx, cancel := c.bounded()
		c.hangup(ctx, rb.customer, leg) // CANCEL
		cancel()
	}
}

// fireReturn is the scheduler's callback: the return starts on its own
// goroutine so the timer loop never waits for the core.
func (c *Control) fireReturn(ctx context.Context, channel string) {
	c.tasks.Go(func() { c.ringBack(ctx, channel) })
}

// ringBack starts the automatic return of the call parked on leg channel,
// if it is still parked and due.
func (c *Control) ringBack(ctx context.Context, channel string) {
	p := c.store.ParkedByChannel(channel)
	if p == nil || p.Due.IsZero() || !c.owns(p.Customer) {
		return
	}
	if now := c.now(); p.Due.After(now) {
		c.returns.sched.Schedule(channel, p.Due) // moved meanwhile
		return
	}
	cust := c.customer(p.Customer)
	if cust == nil || !cust.Features.AutoRetrieve.Enabled {
		return // switched off by a reload: the call stays parked
	}
	c.returns.mu.Lock()
	busy := c.returns.byParked[channel] != nil
	c.returns.mu.Unlock()
	if busy {
		return
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

// dialReturn rings target (an account of cust) for the call parked as p.
func (c *Control) dialReturn(ctx context.Context, cust *dialplans.Customer, p *state.Parked, target string, forward bool) {
	rb := &ringBack{customer: p.Customer, parked: p.Channel, target: target, forward: forward}
	if forward {
		c.publishReturn(events.CallForwarded, p, target, "", 0)
	}
	var uri string
	if cust.Account(target) == nil {
		// forward_to names an external number: out through the customer's
		// trunk, when it has one that names a host.
		u, ok := cust.OutboundURI(target)
		if !forward || !ok {
			c.returnFailed(ctx, rb, ReasonUnreachable, 0)
			return
		}
		uri = u
	}
	c.returns.mu.Lock()
	if c.returns.byParked[p.Channel] != nil {
		c.returns.mu.Unlock()
		return
	}
	c.returns.byParked[p.Channel] = rb
	c.returns.mu.Unlock()

	ar := cust.Features.AutoRetrieve
	cmd := &events.Command{
		Op:        events.OpDial,
		Call:      p.Channel,
		Account:   target,
		From:      returnedFrom(p.Party),
		URI:       uri,
		TimeoutMs: int(c.ringTime(cust).Milliseconds()),
		Bridge:    true,
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
		c.returns.mu.Lock()
		if c.returns.byParked[p.Channel] == rb {
			delete(c.returns.byParked, p.Channel)
		}
		c.returns.mu.Unlock()
		if notFound(err) {
			// The parked leg is gone (its call.ended may have been missed
			// across a restart): forget the park.
			if gone, err := c.store.UnparkChannel(p.Channel); err == nil {
				c.publish(events.CallAbandoned, gone.Customer, gone.Channel, gone.Event())
			}
			c.store.DeleteChannel(p.Channel)
			return
		}
		c.returnFailed(ctx, rb, ReasonUnreachable, 0)
		return
	}
	c.returns.mu.Lock()
	if rb.leg == "" {
		rb.leg = r.Call
		c.returns.byLeg[r.Call] = rb
	}
	aborted := rb.aborted
	c.returns.mu.Unlock()
	if aborted {
		c.hangup(ctx, p.Customer, r.Call)
	}
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

// handleReturnEvent takes the events of automatic return legs; it reports
// whether e was one (and is fully handled).
func (c *Control) handleReturnEvent(ctx context.Context, e *events.Event) bool {
	if e.Direction != events.Outbound {
		return false
	}
	r := c.returns
	r.mu.Lock()
	rb := r.byLeg[e.Call]
	if rb == nil && e.DialedFor != "" && e.Type == events.CallStarted && e.Direction == events.Outbound {
		// Only a new outbound leg dialed for the parked call can be the
		// return: other legs' events name the parked call as their Peer
		// too (the parker's old leg ending after the park), and taking one
		// of them for the return left the real return's answer unclaimed,
		// a ghost call nobody hung up.
		if x := r.byParked[e.DialedFor]; x != nil && x.leg == "" {
			// The leg's events outran the dial's reply.
			x.leg = e.Call
			rb = x
			r.byLeg[e.Call] = rb
		}
	}
	if rb == nil {
		r.mu.Unlock()
		return false
	}
	switch e.Type {
	case events.CallStarted:
		r.mu.Unlock()
		return false // recorded as any outbound leg
	case events.CallAnswered:
		aborted := rb.aborted
		rb.claiming = !aborted
		r.mu.Unlock()
		if aborted {
			c.hangup(ctx, e.Customer, e.Call)
			return true
		}
		c.returnAnswered(ctx, rb, e)
		return true
	case events.CallDialFailed:
		delete(r.byLeg, e.Call)
		mine := r.byParked[rb.parked] == rb
		if mine {
			delete(r.byParked, rb.parked)
		}
		r.mu.Unlock()
		c.store.DeleteChannel(e.Call)
		if !mine || rb.aborted {
			return true
		}
		reason := ReasonFailed
		switch e.Code {
		case 486, 600:
			reason = ReasonBusy
		case 480, 408:
			reason = ReasonNoAnswer
		case 487:
			// Cancelled: the caller hung up (its call.ended, on another
			// worker, abandons the park) or the core gave up on it. Not
			// the parker's doing: try again later, quietly.
			c.retryLater(rb.parked)
			return true
		}
		c.returnFailed(ctx, rb, reason, e.Code)
		return true
	case events.CallEnded:
		delete(r.byLeg, e.Call)
		if r.byParked[rb.parked] == rb {
			delete(r.byParked, rb.parked)
		}
		r.mu.Unlock()
		return false // onEnded forgets the leg
	}
	r.mu.Unlock()
	return false
}

// returnAnswered: the phone took the return and the core has bridged it
// with the caller, unless a manual retrieval got there first. Taking the
// park decides who keeps the caller.
func (c *Control) returnAnswered(ctx context.Context, rb *ringBack, e *events.Event) {
	// One transaction takes the call off parking and pairs the legs: of
	// this return and a manual retrieval, exactly one wins.
	rec, err := c.store.Retrieve(rb.parked, e.Call)
	c.returns.mu.Lock()
	delete(c.returns.byLeg, rb.leg)
	if c.returns.byParked[rb.parked] == rb {
		delete(c.returns.byParked, rb.parked)
	}
	c.returns.mu.Unlock()
	if err != nil {
		// Retrieved by hand (or abandoned) first: no ghost call.
		c.log.Info("automatic return lost to a retrieval", "customer", rb.customer, "leg", rb.leg)
		c.hangup(ctx, rb.customer, e.Call)
		return
	}
	c.metrics.retrieves.WithLabelValues(rec.Customer).Inc()
	c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
	c.log.Info("parked call returned", "customer", rec.Customer, "key", rec.Key, "parked", rec.Channel, "to", rb.target)
	park := rec.Event()
	park.By = rb.target
	if !rb.forward {
		c.metrics.returns.WithLabelValues(rec.Customer, "answered").Inc()
		c.publish(events.CallReturned, rec.Customer, rec.Channel, park)
	}
	c.publish(events.CallRetrieved, rec.Customer, rec.Channel, park)
	// The caller's phone shows who took the call back (the answering
	// phone already saw the caller in the return's From).
	who := events.Party{User: rb.target}
	if cust := c.customer(rec.Customer); cust != nil {
		if a := cust.Account(rb.target); a != nil {
			who.Display = a.Name
		}
	}
	c.tellIdentity(ctx, rec.Customer, rec.Channel, who)
}

// returnFailed: a return reached nobody. The parker's answering mode says
// what next: forward now, try again later, or give up.
func (c *Control) returnFailed(ctx context.Context, rb *ringBack, reason string, code int) {
	p := c.store.ParkedByChannel(rb.parked)
	if p == nil {
		return // retrieved or abandoned meanwhile
	}
	c.publishReturn(events.CallReturnFailed, p, rb.target, reason, code)
	cust := c.customer(p.Customer)
	if cust == nil {
		return
	}
	acct := cust.Account(p.Parker)
	if !rb.forward && acct != nil && acct.AnsweringMode == dialplans.AnswerRingThenForward && acct.ForwardTo != "" {
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
	c.returns.sched.Schedule(p.Channel, p.Due)
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
	c.bus.Publish(&events.Event{
		V:        events.Version,
		Type:     typ,
		Time:     c.now().UTC(),
		Customer: p.Customer,
		Call:     p.Channel,
		Account:  account,
		Reason:   reason,
		Code:     code,
		Park:     p.Event(),
	})
}
