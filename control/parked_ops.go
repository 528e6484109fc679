package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

// Operations on calls already parked, for apps (the web console): hang a
// waiting caller up, move one to another slot. Parking and retrieving are
// in ops.go.
// HangupParked hangs up the call parked on at, as a receptionist's
// console does for a caller nobody will take: the caller hears nothing
// more, the spot frees when the core reports the leg ended (call.abandoned,
// as if the caller had hung up). The customer must have the API on.
func (c *Control) HangupParked(ctx context.Context, customer string, at Spot) (*state.Parked, error) {
	if _, err := c.apiCustomer(customer); err != nil {
		return nil, err
	}
	key, err := at.key()
	if err != nil {
		return nil, err
	}
	rec := c.store.Parked(customer, key)
	if rec == nil {
		return nil, fmt.Errorf("%w: nothing parked on %s", ErrNotParked, at)
	}
	if _, err := c.do(ctx, customer, &events.Command{Op: events.OpHangup, Call: rec.Channel}); err != nil {
		return nil, fmt.Errorf("control: hang up %s: %w", rec.Channel, err)
	}
	c.log.Info("parked call hung up", "customer", customer, "key", key, "call", rec.Channel, "via", "api")
	return rec, nil
}

// MoveParked moves the call parked on from to the free slot to, as a
// receptionist's console does: the caller keeps its music and its wait
// (the automatic return stays due when it was), the lamps of both slots
// follow, and call.parked announces the new spot.
func (c *Control) MoveParked(ctx context.Context, customer string, from, to Spot) (*state.Parked, error) {
	cust, err := c.apiCustomer(customer)
	if err != nil {
		return nil, err
	}
	if to.Kind != state.KindSlot || cust.Slots[to.Number] == nil {
		return nil, fmt.Errorf("%w: move to one of the customer's slots", ErrInvalid)
	}
	key, err := from.key()
	if err != nil {
		return nil, err
	}
	code := to.Number
	if cust.Rule != nil {
		code = cust.Rule.SlotRelease + to.Number
	}
	rec, err := c.store.MoveParked(customer, key, &state.Parked{Key: state.SlotKey(to.Number), Kind: state.KindSlot, Number: to.Number, Code: code})
	switch {
	case errors.Is(err, state.ErrNotParked):
		return nil, fmt.Errorf("%w: nothing parked on %s", ErrNotParked, from)
	case errors.Is(err, state.ErrNumberBusy):
		return nil, fmt.Errorf("%w: a call is already parked on %s", ErrBusy, to)
	case err != nil:
		return nil, err
	}
	log := c.log.With("customer", customer, "from", key, "via", "api")
	c.parkDone(rec, log)
	return rec, nil
}
