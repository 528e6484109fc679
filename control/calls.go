package control

import (
	"context"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// onStarted records a new leg and, for an inbound one, decides what the
// dialed string means.
func (c *Control) onStarted(ctx context.Context, e *events.Event) {
	created := e.Time
	if created.IsZero() {
		created = c.now()
	}
	ch := &state.Channel{
		ID:        e.Call,
		Customer:  e.Customer,
		Account:   e.Account,
		Direction: e.Direction,
		State:     state.StateRinging,
		From:      e.From,
		To:        e.To,
		Created:   created,
	}
	if e.Direction == events.Outbound {
		// A leg the core dialed for us: its peer is the leg it rings for.
		ch.Peer = e.DialedFor
		if err := c.store.UpsertChannel(ch); err != nil {
			c.log.Error("store channel", "call", e.Call, "err", err)
		}
		return
	}
	ch.Direction = events.Inbound
	if err := c.store.UpsertChannel(ch); err != nil {
		c.log.Error("store channel", "call", e.Call, "err", err)
		c.reject(ctx, e.Customer, e.Call, 500)
		return
	}

	cust := c.customer(e.Customer)
	if cust == nil {
		c.log.Warn("call for unknown customer", "customer", e.Customer, "call", e.Call)
		c.reject(ctx, e.Customer, e.Call, 404)
		return
	}
	route := cust.Route(e.Dialed)
	log := c.log.With("customer", e.Customer, "call", e.Call, "account", e.Account, "trunk", e.Trunk, "dialed", e.Dialed, "route", route.String())
	log.Debug("routing inbound call")

	if route.Kind == dialplans.RouteExtension && c.shed(e) {
		c.noisy.Warn("new call refused: the control plane is overloaded", "customer", e.Customer, "account", e.Account, "dialed", e.Dialed)
		c.reject(ctx, e.Customer, e.Call, 503)
		return
	}
	if e.Account == "" {
		// Trunks (and anything else without an account) only reach
		// extensions and DIDs, never service codes.
		if route.Kind == dialplans.RouteExtension {
			c.dialExtension(ctx, e, cust, route.Number)
			return
		}
		log.Info("rejecting call: not an extension")
		c.reject(ctx, e.Customer, e.Call, 404)
		return
	}
	acct := cust.Account(e.Account)
	if acct == nil {
		log.Warn("call from unknown account")
		c.reject(ctx, e.Customer, e.Call, 403)
		return
	}
	switch route.Kind {
	case dialplans.RouteExtension:
		c.dialExtension(ctx, e, cust, route.Number)
	case dialplans.RoutePark, dialplans.RouteParkRandom:
		c.parkByDial(ctx, e, cust, acct, route)
	case dialplans.RouteRetrieve, dialplans.RouteRetrieveOwn, dialplans.RouteRetrieveRandom, dialplans.RouteSlot:
		c.retrieve(ctx, e, cust, acct, route)
	case dialplans.RouteOutside:
		if !acct.Can(dialplans.PermOutside) {
			log.Info("rejecting call: the account may not call outside")
			c.reject(ctx, e.Customer, e.Call, 403)
			return
		}
		c.dialOutside(ctx, e.Customer, e.Call, cust, acct, route.Number, 0)
	default:
		log.Info("rejecting call: nothing dialed matches")
		c.reject(ctx, e.Customer, e.Call, 404)
	}
}

// dialExtension rings the account ext for inbound leg e.Call; the core
// bridges the legs when one of the account's phones answers (a pending
// dial, dials.go).
func (c *Control) dialExtension(ctx context.Context, e *events.Event, cust *dialplans.Customer, ext string) {
	if cust.Account(ext) == nil {
		c.reject(ctx, e.Customer, e.Call, 404)
		return
	}
	d := &state.Dial{For: e.Call, Customer: e.Customer, Purpose: state.DialExtension, Target: ext}
	if err := c.addDial(d, cust.Features.DialTimeout); err != nil {
		c.log.Warn("extension call not dialed", "call", e.Call, "err", err)
		c.reject(ctx, e.Customer, e.Call, 480)
		return
	}
	r, err := c.do(ctx, e.Customer, &events.Command{
		Op:        events.OpDial,
		Call:      e.Call,
		Account:   ext,
		From:      e.From,
		TimeoutMs: int(cust.Features.DialTimeout.Milliseconds()),
		Bridge:    true,
		Dial:      d.ID,
	})
	if err != nil {
		if _, ok := c.endDial(d.ID); ok && !notFound(err) {
			c.reject(ctx, e.Customer, e.Call, 480)
		}
		return
	}
	c.dialStarted(d, r.Call)
}

// callFailed: extension or outside call d was not answered (e is its
// dial_failed, or its end before an answer). An outside call tries the
// next trunk on a carrier failure; else the caller, if it still rings,
// hears busy (486) or unavailable (480).
func (c *Control) callFailed(ctx context.Context, d *state.Dial, e *events.Event) {
	a := c.store.Channel(d.For)
	if a == nil || a.State != state.StateRinging {
		return
	}
	if e.Type == events.CallDialFailed && d.Purpose == state.DialOutside && carrierFailure(e.Code) {
		cust := c.customer(a.Customer)
		if next := d.Try + 1; cust != nil && next < len(cust.OutsideTrunks()) {
			c.log.Info("outside call fails over to the next trunk", "customer", a.Customer, "call", a.ID,
				"code", e.Code, "trunk", cust.OutsideTrunks()[next].Name)
			c.dialOutside(ctx, a.Customer, a.ID, cust, cust.Account(a.Account), d.Number, next)
			return
		}
	}
	code := 480
	if e.Code == 486 {
		code = 486
	}
	c.reject(ctx, a.Customer, a.ID, code)
}

// onAnswered marks a leg up. An outbound leg answered with no dial pending
// (dialed by an earlier run of the control plane) is now bridged with the
// leg it was dialed for; a pending dial's answer is dials.go's.
func (c *Control) onAnswered(_ context.Context, e *events.Event) {
	ch := c.store.Channel(e.Call)
	if ch == nil {
		return
	}
	up := func(x *state.Channel) {
		if x.State == state.StateRinging {
			x.State = state.StateUp
		}
	}
	if ch.Direction != events.Outbound {
		c.store.UpdateChannel(e.Call, up)
		return
	}
	peer := ch.Peer
	if peer == "" {
		peer = e.DialedFor
	}
	c.store.UpdateChannel(e.Call, func(x *state.Channel) {
		up(x)
		x.Peer = peer
	})
	if peer == "" {
		return
	}
	c.store.UpdateChannel(peer, func(x *state.Channel) {
		up(x)
		x.Peer = e.Call
	})
}

// onHeld: the phone on leg X put the call on hold, so its peer hears music.
func (c *Control) onHeld(ctx context.Context, e *events.Event) {
	x := c.store.Channel(e.Call)
	if x == nil || x.State != state.StateUp {
		return // ringing, already held, or parked (a parked party's hold changes nothing)
	}
	c.store.UpdateChannel(x.ID, func(ch *state.Channel) {
		if ch.State == state.StateUp {
			ch.State = state.StateHeld
		}
	})
	y := c.peerOf(x)
	if y == nil || c.parked(y) || (y.State != state.StateUp && y.State != state.StateHeld) {
		return
	}
	var music string
	if cust := c.customer(e.Customer); cust != nil {
		music = cust.Features.Music
	}
	c.do(ctx, e.Customer, &events.Command{Op: events.OpMusic, Call: y.ID, On: true, Music: music})
}

// onResumed: the phone on leg X took the call off hold; if its peer is
// still there, talking, they are bridged again (the core stops the music).
// If the peer holds too, it keeps its music until it resumes itself.
func (c *Control) onResumed(ctx context.Context, e *events.Event) {
	x := c.store.Channel(e.Call)
	if x == nil || x.State != state.StateHeld {
		return
	}
	c.store.UpdateChannel(x.ID, func(ch *state.Channel) {
		if ch.State == state.StateHeld {
			ch.State = state.StateUp
		}
	})
	y := c.peerOf(x)
	if y == nil || c.parked(y) || y.State != state.StateUp {
		return
	}
	c.do(ctx, e.Customer, &events.Command{Op: events.OpBridge, Call: x.ID, Peer: y.ID})
}

// onDialFailed forgets an outbound leg that failed before answer (what
// its pending dial waited for is dials.go's).
func (c *Control) onDialFailed(_ context.Context, e *events.Event) {
	c.store.DeleteChannel(e.Call)
}

// onEnded forgets leg X: a parked X is abandoned; X's talking peer is hung
// up (never a parked one). (An outbound leg still ringing for X is
// cancelled by its pending dial, dials.go.)
//
// The channel and its park go in one transaction: state.Store.Park refuses
// a missing channel, so a park racing with the end cannot outlive the leg.
func (c *Control) onEnded(ctx context.Context, e *events.Event) {
	x, p := c.store.EndChannel(e.Call)
	if p != nil {
		c.metrics.abandons.WithLabelValues(p.Customer).Inc()
		c.metrics.parkDuration.Observe(c.now().Sub(p.Since).Seconds())
		c.log.Info("parked call abandoned", "customer", p.Customer, "key", p.Key, "call", e.Call)
		c.publish(events.CallAbandoned, p.Customer, p.Channel, p.Event())
	}
	if x == nil {
		return
	}
	if y := c.peerOf(x); y != nil && (y.State == state.StateUp || y.State == state.StateHeld) && !c.parked(y) {
		c.hangup(ctx, x.Customer, y.ID)
	}
}

// onRegistration mirrors an account's contacts.
func (c *Control) onRegistration(_ context.Context, e *events.Event) {
	if err := c.store.UpsertRegistration(&state.Registration{Customer: e.Customer, Account: e.Account, Node: e.Node, Contacts: e.Contacts}); err != nil {
		c.log.Warn("store registration", "customer", e.Customer, "account", e.Account, "err", err)
	}
}

// peerOf returns X's peer if it is of the same customer and still paired
// with X, else nil.
func (c *Control) peerOf(x *state.Channel) *state.Channel {
	if x == nil || x.Peer == "" {
		return nil
	}
	y := c.store.Channel(x.Peer)
	if y == nil || y.Customer != x.Customer || y.Peer != x.ID {
		return nil
	}
	return y
}

// parked reports whether leg ch is parked.
func (c *Control) parked(ch *state.Channel) bool {
	return ch.State == state.StateParked || c.store.ParkedByChannel(ch.ID) != nil
}

// outsideRingTime is how long an outside call may ring at the far end.
const outsideRingTime = 60 * time.Second

// dialOutside calls number through the customer's try-th outside trunk for
// inbound leg call; the core answers the carrier's challenge with the
// trunk's credentials and bridges on answer. A carrier failure (5xx, a
// timeout) moves to the next trunk (callFailed).
func (c *Control) dialOutside(ctx context.Context, customer, call string, cust *dialplans.Customer, acct *dialplans.Account, number string, try int) {
	trunks := cust.OutsideTrunks()
	if try >= len(trunks) {
		c.log.Info("rejecting outside call: no trunk takes outbound calls", "customer", customer, "call", call)
		c.reject(ctx, customer, call, 404)
		return
	}
	t := trunks[try]
	uri, ok := t.OutsideURI(number)
	if !ok {
		c.reject(ctx, customer, call, 484)
		return
	}
	from := events.Party{User: cust.CallerIDOf(t)}
	if acct != nil {
		from.Display = acct.Name
	}
	if from.User == "" && acct != nil {
		from.User = acct.Extension
	}
	d := &state.Dial{For: call, Customer: customer, Purpose: state.DialOutside, Target: uri, Number: number, Try: try}
	if err := c.addDial(d, outsideRingTime); err != nil {
		c.log.Warn("outside call not dialed", "call", call, "err", err)
		c.reject(ctx, customer, call, 503)
		return
	}
	r, err := c.do(ctx, customer, &events.Command{
		Op:        events.OpDial,
		Call:      call,
		URI:       uri,
		Trunk:     t.Name,
		From:      from,
		TimeoutMs: int(outsideRingTime.Milliseconds()),
		Bridge:    true,
		Dial:      d.ID,
	})
	if err != nil || r.Call == "" {
		if _, ok := c.endDial(d.ID); ok && !notFound(err) {
			c.reject(ctx, customer, call, 503)
		}
		return
	}
	c.dialStarted(d, r.Call)
}

// carrierFailure reports whether a failed outside dial should try the
// next trunk: the carrier's trouble (5xx, 408, no answer at all), not the
// callee's (busy, declined, a wrong number).
func carrierFailure(code int) bool {
	return code == 0 || code == 408 || code >= 500 && code < 600
}
