package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// This file is the control plane's surface for the call-control API
// (package control/api): park a call on an account's behalf, retrieve a
// parked call to an account or a SIP URI, and read slots, parked calls and
// an account's calls. It reuses park and ClaimParked, so a park or a
// retrieval through the API follows the same rules as one dialed on a phone.

// Errors of the call-control operations; the API maps each to a stable code.
// The operations wrap them with a message for the user.
var (
	ErrNotFound     = errors.New("not found")            // customer, account, call, slot or number
	ErrBusy         = errors.New("number busy")          // a call is already parked there
	ErrNotPermitted = errors.New("not permitted")        // feature off or permission missing
	ErrNotParked    = errors.New("nothing parked there") // retrieve found no call
	ErrInvalid      = errors.New("invalid request")      // a malformed spot or destination
)

// Spot names a parking place: Kind is state.KindSlot, state.KindExtension or
// state.KindRandom; Number is the slot, the extension or the random number
// (empty to park on a freshly drawn random number).
type Spot struct {
	Kind   string
	Number string
}

func (s Spot) String() string { return s.Kind + " " + s.Number }

// route is the dialplan route a park on s takes.
func (s Spot) route() (dialplans.Route, error) {
	switch {
	case s.Kind == state.KindSlot && s.Number != "":
		return dialplans.Route{Kind: dialplans.RouteSlot, Number: s.Number}, nil
	case s.Kind == state.KindExtension && s.Number != "":
		return dialplans.Route{Kind: dialplans.RoutePark, Number: s.Number}, nil
	case s.Kind == state.KindRandom && s.Number == "":
		return dialplans.Route{Kind: dialplans.RouteParkRandom}, nil
	}
	return dialplans.Route{}, fmt.Errorf("%w: park needs a slot, an extension or random", ErrInvalid)
}

// key is the state key of the call parked on s.
func (s Spot) key() (string, error) {
	if s.Number == "" {
		return "", fmt.Errorf("%w: retrieve needs a slot, an extension or a random number", ErrInvalid)
	}
	switch s.Kind {
	case state.KindSlot:
		return state.SlotKey(s.Number), nil
	case state.KindExtension:
		return state.ExtensionKey(s.Number), nil
	case state.KindRandom:
		return state.RandomKey(s.Number), nil
	}
	return "", fmt.Errorf("%w: unknown kind %q", ErrInvalid, s.Kind)
}

// Dest is where a retrieved call goes: an account's phones, or a SIP URI.
type Dest struct {
	Account string
	URI     string
}

func (d Dest) String() string { return cmp.Or(d.Account, d.URI) }

// ParkCall parks the other party of account's call (callID: the account's
// leg or the other party's; empty: the account's current call) on at, then
// hangs up the account's leg, as if the account's phone had dialed the park
// code. The account must hold call_control and the customer have the API
// and parking switched on.
func (c *Control) ParkCall(ctx context.Context, customer, account, callID string, at Spot) (*state.Parked, error) {
	cust, acct, err := c.apiAccount(customer, account)
	if err != nil {
		return nil, err
	}
	if !cust.Features.Parking {
		return nil, fmt.Errorf("%w: parking is switched off for %s", ErrNotPermitted, customer)
	}
	route, err := at.route()
	if err != nil {
		return nil, err
	}
	x, err := c.accountLeg(customer, account, callID)
	if err != nil {
		return nil, err
	}
	p := c.peerOf(x)
	if p == nil || c.parked(p) || (p.State != state.StateUp && p.State != state.StateHeld) {
		return nil, fmt.Errorf("%w: call %s has no party to park", ErrNotFound, x.ID)
	}
	log := c.log.With("customer", customer, "call", x.ID, "account", account, "route", route.String(), "via", "api")
	// If the account held the call first, the other party hears music already.
	rec, err := c.park(ctx, cust, acct.Extension, route, p, x.State == state.StateHeld)
	switch {
	case err == nil:
	case errors.Is(err, errInvalidNumber):
		return nil, fmt.Errorf("%w: %s is not a %s one may park on", ErrNotFound, at.Number, at.Kind)
	case errors.Is(err, state.ErrNumberBusy), errors.Is(err, state.ErrNoNumber):
		return nil, fmt.Errorf("%w: a call is already parked on %s", ErrBusy, at)
	case errors.Is(err, errNoCall):
		return nil, fmt.Errorf("%w: the call to park is gone", ErrNotFound)
	default:
		return nil, err
	}
	c.hangup(ctx, customer, x.ID)
	c.parkDone(rec, log)
	return rec, nil
}

// Retrieval is a retrieval the API started: Leg rings the destination.
type Retrieval struct {
	Parked *state.Parked
	Leg    string
}

// RetrieveTo takes the call parked on from and rings to with it; the core
// bridges them when to answers. The parked call is claimed at once (of a
// retrieval here and a phone dialing the retrieval code at the same time
// exactly one wins); while to rings the caller keeps its music and the call
// is no longer listed as parked. If to does not answer, the call goes back
// where it was parked.
func (c *Control) RetrieveTo(ctx context.Context, customer string, from Spot, to Dest) (*Retrieval, error) {
	cust, err := c.apiCustomer(customer)
	if err != nil {
		return nil, err
	}
	switch {
	case to.Account != "" && to.URI != "":
		return nil, fmt.Errorf("%w: retrieve to an account or a URI, not both", ErrInvalid)
	case to.Account != "":
		acct := cust.Account(to.Account)
		if acct == nil {
			return nil, fmt.Errorf("%w: no account %q", ErrNotFound, to.Account)
		}
		if !acct.Can(dialplans.PermCallControl) {
			return nil, fmt.Errorf("%w: account %s lacks call_control", ErrNotPermitted, to.Account)
		}
	case strings.HasPrefix(to.URI, "sip:") || strings.HasPrefix(to.URI, "sips:"):
	default:
		return nil, fmt.Errorf("%w: retrieve needs to: an account or a sip: URI", ErrInvalid)
	}
	key, err := from.key()
	if err != nil {
		return nil, err
	}
	log := c.log.With("customer", customer, "key", key, "to", to.String(), "via", "api")
	rec, err := c.store.ClaimParked(customer, key)
	if err != nil {
		return nil, fmt.Errorf("%w: nothing parked on %s", ErrNotParked, from)
	}
	// The pending dial is recorded before the core is asked: the new leg's
	// events may outrun the reply, and find it by the leg it rings for.
	// Its outcome comes through HandleEvent like every event (dials.go).
	pending := &state.Dial{For: rec.Channel, Customer: customer, Purpose: state.DialRetrieval, Target: to.String(), Park: rec}
	// Past its ring time (and a margin for the core's own timeout), the
	// outcome is no longer waited for.
	if err := c.addDial(pending, cust.Features.DialTimeout); err != nil {
		c.giveBack(rec, log)
		return nil, fmt.Errorf("control: retrieval: %w", err)
	}
	r, err := c.do(ctx, customer, &events.Command{
		Op:        events.OpDial,
		Call:      rec.Channel,
		Account:   to.Account,
		URI:       to.URI,
		From:      rec.Party,
		TimeoutMs: int(cust.Features.DialTimeout.Milliseconds()),
		Bridge:    true,
		Dial:      pending.ID,
	})
	if err != nil || r.Call == "" {
		if _, ok := c.endDial(pending.ID); ok {
			c.giveBack(rec, log)
		}
		if notFound(err) {
			return nil, fmt.Errorf("%w: the parked call is gone", ErrNotParked)
		}
		return nil, fmt.Errorf("control: dial %s: %w", to, err)
	}
	c.dialStarted(pending, r.Call)
	log.Info("retrieving parked call", "parked", rec.Channel, "leg", r.Call)
	return &Retrieval{Parked: rec, Leg: r.Call}, nil
}

// giveBack parks rec again after a failed retrieval; a caller that hung up
// meanwhile is counted as abandoned.
func (c *Control) giveBack(rec *state.Parked, log *slog.Logger) {
	if err := c.store.Park(rec); err != nil {
		log.Info("parked call not restored", "parked", rec.Channel, "err", err)
		if errors.Is(err, state.ErrNoChannel) {
			c.metrics.abandons.WithLabelValues(rec.Customer).Inc()
			c.publish(events.CallAbandoned, rec.Customer, rec.Channel, rec.Event())
		}
	}
}

// SlotState is one configured slot and the call parked on it, if any.
type SlotState struct {
	Slot   *dialplans.Slot
	Parked *state.Parked
}

// Slots returns every configured slot of customer, in numeric order, with
// the call parked on each.
func (c *Control) Slots(customer string) ([]SlotState, error) {
	cust := c.customer(customer)
	if cust == nil {
		return nil, fmt.Errorf("%w: no customer %q", ErrNotFound, customer)
	}
	out := make([]SlotState, 0, len(cust.Slots))
	for _, s := range cust.Slots {
		out = append(out, SlotState{Slot: s, Parked: c.store.Parked(customer, state.SlotKey(s.Number))})
	}
	slices.SortFunc(out, func(a, b SlotState) int { return compareNumbers(a.Slot.Number, b.Slot.Number) })
	return out, nil
}

// Parked returns the customer's parked calls, oldest first.
func (c *Control) Parked(customer string) ([]*state.Parked, error) {
	if c.customer(customer) == nil {
		return nil, fmt.Errorf("%w: no customer %q", ErrNotFound, customer)
	}
	ps := c.store.ParkedList(customer)
	slices.SortStableFunc(ps, func(a, b *state.Parked) int { return a.Since.Compare(b.Since) })
	return ps, nil
}

// Call is one of an account's legs and the leg it is paired with.
type Call struct {
	Leg  *state.Channel
	Peer *state.Channel // nil when not bridged (ringing, alone)
}

// Calls returns account's current legs, newest first.
func (c *Control) Calls(customer, account string) ([]Call, error) {
	cust := c.customer(customer)
	if cust == nil {
		return nil, fmt.Errorf("%w: no customer %q", ErrNotFound, customer)
	}
	if cust.Account(account) == nil {
		return nil, fmt.Errorf("%w: no account %q", ErrNotFound, account)
	}
	legs := c.store.ChannelsByAccount(customer, account)
	slices.SortFunc(legs, func(a, b *state.Channel) int { return b.Created.Compare(a.Created) })
	out := make([]Call, 0, len(legs))
	for _, l := range legs {
		out = append(out, Call{Leg: l, Peer: c.peerOf(l)})
	}
	return out, nil
}

// CountAPIRequest counts one API request by endpoint and result code.
func (c *Control) CountAPIRequest(endpoint, code string) {
	c.metrics.apiRequests.WithLabelValues(endpoint, code).Inc()
}

// apiAccount checks that customer has the API on and account may be driven
// through it.
func (c *Control) apiAccount(customer, account string) (*dialplans.Customer, *dialplans.Account, error) {
	cust, err := c.apiCustomer(customer)
	if err != nil {
		return nil, nil, err
	}
	if account == "" {
		return nil, nil, fmt.Errorf("%w: account is required", ErrInvalid)
	}
	acct := cust.Account(account)
	if acct == nil {
		return nil, nil, fmt.Errorf("%w: no account %q", ErrNotFound, account)
	}
	if !acct.Can(dialplans.PermCallControl) {
		return nil, nil, fmt.Errorf("%w: account %s lacks call_control", ErrNotPermitted, account)
	}
	return cust, acct, nil
}

// accountLeg finds account's leg of call callID (the account's own leg or
// its peer), or with callID empty the account's current call: a leg that
// talks (preferred) or holds, with a peer, newest first.
func (c *Control) accountLeg(customer, account, callID string) (*state.Channel, error) {
	if callID != "" {
		ch := c.store.Channel(callID)
		if ch == nil || ch.Customer != customer {
			return nil, fmt.Errorf("%w: no call %q", ErrNotFound, callID)
		}
		if ch.Account == account {
			return ch, nil
		}
		if p := c.peerOf(ch); p != nil && p.Account == account {
			return p, nil
		}
		return nil, fmt.Errorf("%w: call %q is not account %s's", ErrNotFound, callID, account)
	}
	var best *state.Channel
	rank := func(ch *state.Channel) int {
		if ch.State == state.StateUp {
			return 2
		}
		return 1
	}
	for _, ch := range c.store.ChannelsByAccount(customer, account) {
		if ch.State != state.StateUp && ch.State != state.StateHeld {
			continue
		}
		if p := c.peerOf(ch); p == nil || c.parked(p) {
			continue
		}
		if best == nil || rank(ch) > rank(best) || (rank(ch) == rank(best) && ch.Created.After(best.Created)) {
			best = ch
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: account %s has no call", ErrNotFound, account)
	}
	return best, nil
}

// compareNumbers orders digit strings numerically ("2" before "10").
func compareNumbers(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil && x != y {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}

// apiCustomer is customer, if it exists and has the call-control API on.
func (c *Control) apiCustomer(customer string) (*dialplans.Customer, error) {
	cust := c.customer(customer)
	if cust == nil {
		return nil, fmt.Errorf("%w: no customer %q", ErrNotFound, customer)
	}
	if !cust.Features.API {
		return nil, fmt.Errorf("%w: the call-control API is switched off for %s", ErrNotPermitted, customer)
	}
	return cust, nil
}
