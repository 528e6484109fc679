package control

import (
	"context"
	"errors"
	"log/slog"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// Why a park was refused.
var (
	errInvalidNumber = errors.New("control: not a number one may park on")
	errNoCall        = errors.New("control: the call to park is gone")
)

// parkByDial handles a park code dialed on leg e.Call (RoutePark,
// RouteParkRandom): the account's held call is parked, the parker hears
// the retrieval code and their held leg is released.
func (c *Control) parkByDial(ctx context.Context, e *events.Event, cust *dialplans.Customer, acct *dialplans.Account, route dialplans.Route) {
	log := c.log.With("customer", e.Customer, "call", e.Call, "account", acct.Extension, "route", route.String())
	if !cust.Features.Parking || !acct.Can(dialplans.PermPark) {
		log.Info("park refused: not permitted")
		c.announce(ctx, e.Customer, e.Call, PromptNotPermitted)
		return
	}
	if route.Kind == dialplans.RoutePark && !cust.ParkNumberAllowed(route.Number) {
		log.Info("park refused: number not allowed")
		c.announce(ctx, e.Customer, e.Call, PromptInvalidNumber)
		return
	}
	x := c.store.HeldChannel(e.Customer, acct.Extension)
	p := c.peerOf(x)
	if p == nil {
		log.Info("park refused: no held call")
		c.announce(ctx, e.Customer, e.Call, PromptNoHeldCall)
		return
	}
	rec, err := c.park(ctx, cust, acct.Extension, route, p, true)
	if err != nil {
		prompt := PromptNoHeldCall
		switch {
		case errors.Is(err, errInvalidNumber):
			prompt = PromptInvalidNumber
		case errors.Is(err, state.ErrNumberBusy), errors.Is(err, state.ErrNoNumber):
			prompt = PromptNumberBusy
		}
		log.Info("park refused", "err", err, "prompt", prompt)
		c.announce(ctx, e.Customer, e.Call, prompt)
		return
	}
	c.announce(ctx, e.Customer, e.Call, append([]string{PromptParked}, spell(rec.Code)...)...)
	c.hangup(ctx, e.Customer, x.ID)
	c.parkDone(rec, log)
}

// onTransfer handles a REFER from the phone on leg X: a park code or slot
// as target parks X's peer; the phone learns the outcome from the NOTIFY.
func (c *Control) onTransfer(ctx context.Context, e *events.Event) {
	notify := func(code int) {
		c.do(ctx, e.Customer, &events.Command{Op: events.OpReferNotify, Call: e.Call, ReferID: e.ReferID, Code: code})
	}
	log := c.log.With("customer", e.Customer, "call", e.Call, "target", e.Target)
	x := c.store.Channel(e.Call)
	cust := c.customer(e.Customer)
	if x == nil || cust == nil {
		log.Info("transfer refused: unknown leg or customer")
		notify(481)
		return
	}
	route := cust.Route(e.Target)
	switch route.Kind {
	case dialplans.RoutePark, dialplans.RouteParkRandom, dialplans.RouteSlot:
	case dialplans.RouteNone:
		log.Info("transfer refused: unknown target")
		notify(404)
		return
	default:
		log.Info("transfer refused: only parking transfers are implemented", "route", route.String())
		notify(501)
		return
	}
	acct := cust.Account(x.Account)
	if !cust.Features.Parking || acct == nil || !acct.Can(dialplans.PermPark) {
		log.Info("park by transfer refused: not permitted")
		notify(403)
		return
	}
	p := c.peerOf(x)
	if p == nil || c.parked(p) || (p.State != state.StateUp && p.State != state.StateHeld) {
		log.Info("park by transfer refused: no call to park")
		notify(481)
		return
	}
	// If X held the call first, the peer already hears music.
	rec, err := c.park(ctx, cust, acct.Extension, route, p, x.State == state.StateHeld)
	if err != nil {
		code := 500
		switch {
		case errors.Is(err, errInvalidNumber):
			code = 404
		case errors.Is(err, state.ErrNumberBusy), errors.Is(err, state.ErrNoNumber):
			code = 486
		case errors.Is(err, errNoCall):
			code = 481
		}
		log.Info("park by transfer refused", "err", err, "code", code)
		notify(code)
		return
	}
	notify(200)
	c.hangup(ctx, e.Customer, x.ID)
	c.parkDone(rec, log)
}

// park parks leg p for account parker under the number route names and
// returns the record. The number is reserved first (one transaction), then
// p gets music (unless musicOn says it has it already: never restarted, so
// there is no gap) and is unbridged from the parker. On failure nothing is
// left changed, except music started here.
func (c *Control) park(ctx context.Context, cust *dialplans.Customer, parker string, route dialplans.Route, p *state.Channel, musicOn bool) (*state.Parked, error) {
	rule := cust.Rule
	if rule == nil {
		rule = &dialplans.Rule{Release: dialplans.DefaultRelease, SlotRelease: dialplans.DefaultSlotRelease, RandomDigits: dialplans.DefaultRandomDigits}
	}
	now := c.now()
	rec := &state.Parked{
		Customer: cust.Name,
		Channel:  p.ID,
		Parker:   parker,
		Party:    p.Party(),
		Since:    now,
	}
	if ar := cust.Features.AutoRetrieve; ar.Enabled {
		rec.Due = now.Add(ar.After)
	}
	switch route.Kind {
	case dialplans.RoutePark:
		if !cust.ParkNumberAllowed(route.Number) {
			return nil, errInvalidNumber
		}
		rec.Key, rec.Kind, rec.Number = state.ExtensionKey(route.Number), state.KindExtension, route.Number
		rec.Code = rule.Release + route.Number
	case dialplans.RouteSlot:
		if cust.Slots[route.Number] == nil {
			return nil, errInvalidNumber
		}
		rec.Key, rec.Kind, rec.Number = state.SlotKey(route.Number), state.KindSlot, route.Number
		rec.Code = rule.SlotRelease + route.Number
		if ar := cust.Features.AutoRetrieve; ar.Enabled {
			rec.Due = now.Add(cust.SlotTimeout(route.Number))
		}
	case dialplans.RouteParkRandom:
		rec.Kind = state.KindRandom
	default:
		return nil, errInvalidNumber
	}

	var err error
	if rec.Kind == state.KindRandom {
		digits := rule.RandomDigits
		if digits == 0 {
			digits = dialplans.DefaultRandomDigits
		}
		// RandomNumber does not reserve: a racing park may take the number
		// first, then draw again.
		for range 8 {
			var n string
			if n, err = c.randomNumber(cust.Name, digits); err != nil {
				break
			}
			rec.Key, rec.Number, rec.Code = state.RandomKey(n), n, rule.Release+"*"+n
			if err = c.store.Park(rec); !errors.Is(err, state.ErrNumberBusy) {
				break
			}
		}
	} else {
		err = c.store.Park(rec)
	}
	if errors.Is(err, state.ErrNoChannel) || errors.Is(err, state.ErrAlreadyParked) {
		return nil, errNoCall
	}
	if err != nil {
		return nil, err
	}

	undo := func() { c.store.UnparkChannel(p.ID) }
	if !musicOn {
		// Music first, then unbridge: p never hears silence.
		if _, err := c.do(ctx, cust.Name, &events.Command{Op: events.OpMusic, Call: p.ID, On: true, Music: cust.Features.Music}); err != nil {
			undo()
			return nil, errNoCall
		}
	}
	if _, err := c.do(ctx, cust.Name, &events.Command{Op: events.OpUnbridge, Call: p.ID}); err != nil && !badState(err) {
		// bad_state: p was not bridged (music only); anything else means
		// p is gone or the core cannot act on it.
		undo()
		return nil, errNoCall
	}
	if _, err := c.store.UpdateChannel(p.ID, func(ch *state.Channel) {
		ch.State = state.StateParked
		ch.Peer = ""
	}); err != nil {
		undo()
		return nil, errNoCall
	}
	return rec, nil
}

// parkDone counts and publishes a successful park.
func (c *Control) parkDone(rec *state.Parked, log *slog.Logger) {
	c.metrics.parks.WithLabelValues(rec.Customer).Inc()
	log.Info("call parked", "key", rec.Key, "parked", rec.Channel, "code", rec.Code)
	c.publish(events.CallParked, rec.Customer, rec.Channel, rec.Event())
}

// retrieve handles a release code dialed on leg e.Call: the parked call is
// claimed (of concurrent claims exactly one wins) and bridged to the caller.
func (c *Control) retrieve(ctx context.Context, e *events.Event, cust *dialplans.Customer, acct *dialplans.Account, route dialplans.Route) {
	log := c.log.With("customer", e.Customer, "call", e.Call, "account", acct.Extension, "route", route.String())
	if !acct.Can(dialplans.PermRetrieve) {
		log.Info("retrieve refused: not permitted")
		c.announce(ctx, e.Customer, e.Call, PromptNotPermitted)
		return
	}
	var key string
	switch route.Kind {
	case dialplans.RouteRetrieve:
		key = state.ExtensionKey(route.Number)
	case dialplans.RouteRetrieveOwn:
		key = state.ExtensionKey(acct.Extension)
	case dialplans.RouteRetrieveRandom:
		key = state.RandomKey(route.Number)
	case dialplans.RouteSlot:
		key = state.SlotKey(route.Number)
	}
	rec, err := c.store.ClaimParked(e.Customer, key)
	if err != nil {
		log.Info("retrieve: nothing parked", "key", key)
		c.announce(ctx, e.Customer, e.Call, PromptNotParked)
		return
	}
	// The claim is ours alone; give it back if the retrieving leg fails.
	giveBack := func() {
		if err := c.store.Park(rec); err != nil {
			log.Info("parked call not restored", "key", key, "err", err)
		}
	}
	if _, err := c.do(ctx, e.Customer, &events.Command{Op: events.OpAnswer, Call: e.Call}); err != nil {
		giveBack()
		c.hangup(ctx, e.Customer, e.Call)
		return
	}
	if _, err := c.do(ctx, e.Customer, &events.Command{Op: events.OpBridge, Call: e.Call, Peer: rec.Channel}); err != nil {
		// The parked leg vanished (its call.ended is on its way), or the
		// core failed: keep it parked if it is still there.
		giveBack()
		c.do(ctx, e.Customer, &events.Command{Op: events.OpPlay, Call: e.Call, Prompts: []string{PromptNotParked}, HangupAfter: true})
		return
	}
	// The claim made this retrieval the winner; the pairing is one
	// transaction (a leg gone meanwhile has its call.ended on the way).
	_ = c.store.Connect(e.Call, rec.Channel)
	c.metrics.retrieves.WithLabelValues(rec.Customer).Inc()
	c.metrics.parkDuration.Observe(c.now().Sub(rec.Since).Seconds())
	log.Info("parked call retrieved", "key", key, "parked", rec.Channel)
	park := rec.Event()
	park.By = acct.Extension
	c.publish(events.CallRetrieved, rec.Customer, rec.Channel, park)
	// The retriever's phone shows the caller, not "*71333"; the caller's
	// shows who picked up (a phone's: a carrier is told nothing).
	c.do(ctx, e.Customer, &events.Command{Op: events.OpIdentity, Call: e.Call, From: rec.Party})
	c.tellIdentity(ctx, e.Customer, rec.Channel, events.Party{User: acct.Extension, Display: acct.Name})
}

// badState reports whether err is the core refusing a command in the leg's
// current state.
func badState(err error) bool {
	var re *events.ReplyError
	return errors.As(err, &re) && re.Code == events.ErrBadState
}
