package control

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/mailbox"
)

// Parking slots on BLF keys. A phone's line key for slot S of a customer
// watches the entity SlotRelease+S ("711") with a dialog-event
// subscription that the core keeps; the control plane tells the core the
// state of each slot entity with the presence command, and publishes
// slot.busy / slot.free:
//
//   - every committed park or unpark of a slot (state.Store.OnParked) queues
//     a change; one goroutine publishes its event and sends the slot's
//     current state (read from the store when sent, so a late hook can
//     never leave a stale lamp);
//   - at start every configured slot of every customer is sent (free, or
//     busy when parked), and every Config.SlotResync the slots of the dialplan in
//     force are compared with what was sent: slots added by a reload (or a
//     changed slot_release) are sent, removed ones are sent free once.
//     Everything is sent again (the core ignores unchanged states) when a
//     core joins or restarts (Config.Nodes) or a cluster partition is taken
//     over; without a node table, every Config.SlotFullResync.
//
// Subscriptions live in the core and do not depend on the dialplan, so a
// reload never drops them.

// slotChange is one committed park (parked) or unpark of a slot.
type slotChange struct {
	p      *state.Parked
	parked bool
}

// lampKey is a slot entity of a customer, e.g. {demo, 711}.
type lampKey struct{ customer, entity string }

// slotLamps is the queue of slot changes and what the core was told.
type slotLamps struct {
	changes *mailbox.Box[slotChange]

	// sent maps each entity the core has a state for to its slot; only
	// the run goroutine touches it.
	sent map[lampKey]string
}

// startSlots hooks slot changes and starts the lamp goroutine; Run calls
// it before any event is handled.
func (c *Control) startSlots(ctx context.Context, wg *sync.WaitGroup) {
	l := &slotLamps{changes: mailbox.New[slotChange](), sent: map[lampKey]string{}}
	c.store.OnParked(func(p *state.Parked, parked bool) {
		if p.Kind == state.KindSlot {
			l.changes.Put(slotChange{p: p, parked: parked})
		}
	})
	wg.Go(func() { c.runSlots(ctx, l) })
}

func (c *Control) runSlots(ctx context.Context, l *slotLamps) {
	c.syncSlots(ctx, l, true)
	resync := time.NewTicker(c.slotResync)
	defer resync.Stop()
	full := time.NewTicker(c.slotFullResync)
	defer full.Stop()
	if c.nodes != nil {
		full.Stop() // announcements say when (resyncLamps)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.changes.Wake():
			for _, ch := range l.changes.Take() {
				c.slotChanged(ctx, l, ch)
			}
		case <-resync.C:
			c.syncSlots(ctx, l, false)
		case <-full.C:
			c.syncSlots(ctx, l, true)
		case <-c.lamps:
			c.syncSlots(ctx, l, true)
		}
	}
}

// slotChanged publishes a slot event and updates the slot's lamp.
func (c *Control) slotChanged(ctx context.Context, l *slotLamps, ch slotChange) {
	p := ch.p
	if !c.owns(p.Customer) {
		return // a partition handed over: not ours to tell
	}
	typ := events.SlotFree
	if ch.parked {
		typ = events.SlotBusy
	}
	c.publishSlot(typ, p)
	entity := p.Code
	if cust := c.customer(p.Customer); cust != nil {
		entity = slotEntity(cust, p.Number)
	}
	c.sendLamp(ctx, l, lampKey{p.Customer, entity}, p.Number)
}

// syncSlots sends the lamps of the slots in the dialplan in force: all of
// them, or only those the core was not told about yet. Entities of slots
// that left the dialplan are sent free once and forgotten.
func (c *Control) syncSlots(ctx context.Context, l *slotLamps, all bool) {
	set := c.dialplans()
	if set == nil {
		return
	}
	want := map[lampKey]string{}
	for _, cust := range set.Customers() {
		if !c.owns(cust.Name) {
			continue
		}
		for number := range cust.Slots {
			want[lampKey{cust.Name, slotEntity(cust, number)}] = number
		}
	}
	keys := make([]lampKey, 0, len(want))
	for k := range want {
		if _, ok := l.sent[k]; all || !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b lampKey) int {
		return cmp.Or(cmp.Compare(a.customer, b.customer), cmp.Compare(a.entity, b.entity))
	})
	for _, k := range keys {
		c.sendLamp(ctx, l, k, want[k])
	}
	for k := range l.sent {
		if _, ok := want[k]; !ok {
			c.do(ctx, k.customer, &events.Command{Op: events.OpPresence, Target: k.entity})
			delete(l.sent, k)
		}
	}
}

// sendLamp tells the core the current state of slot number as entity k.
// A failure is retried by the next resync.
func (c *Control) sendLamp(ctx context.Context, l *slotLamps, k lampKey, number string) {
	cmd := &events.Command{Op: events.OpPresence, Target: k.entity}
	if rec := c.store.Parked(k.customer, state.SlotKey(number)); rec != nil {
		cmd.On, cmd.From = true, rec.Party
	}
	if _, err := c.do(ctx, k.customer, cmd); err != nil {
		delete(l.sent, k)
		return
	}
	l.sent[k] = number
}

// resyncLamps has every lamp sent again soon.
func (c *Control) resyncLamps() {
	select {
	case c.lamps <- struct{}{}:
	default:
	}
}

// slotEntity is the SIP user a phone watches for slot number: the rule's
// slot_release code and the slot, exactly as dialed ("711").
func slotEntity(cust *dialplans.Customer, number string) string {
	release := dialplans.DefaultSlotRelease
	if cust.Rule != nil && cust.Rule.SlotRelease != "" {
		release = cust.Rule.SlotRelease
	}
	return release + number
}
