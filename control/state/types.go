package state

import (
	"slices"
	"time"

	"github.com/callpark/callpark/events"
)

// Channel states.
const (
	StateRinging = "ringing"
	StateUp      = "up"
	StateHeld    = "held"
	StateParked  = "parked"
	StateEnded   = "ended"
)

// Park kinds, as in events.Park.Kind.
const (
	KindExtension = "extension"
	KindRandom    = "random"
	KindSlot      = "slot"
)

// Channel is one SIP leg known to the core.
type Channel struct {
	// ID is the core's call id.
	ID       string
	Customer string
	// Account is the caller's extension on an inbound leg from a phone, the
	// dialed account on an outbound leg, "" on a trunk leg.
	Account   string
	Direction string
	// State is one of the State* constants.
	State string
	// Peer is the leg this one is bridged with (or, for an outbound leg that
	// still rings, the inbound leg it was dialed for).
	Peer string
	// From and To are the parties of the leg's INVITE.
	From events.Party
	To   events.Party
	// Created is when the leg started.
	Created time.Time
}

// Party is the far end of the leg as seen by the switch: the caller of an
// inbound leg, the callee of an outbound one.
func (c *Channel) Party() events.Party {
	if c.Direction == events.Outbound {
		if c.To.User != "" || c.To.URI != "" {
			return c.To
		}
		return events.Party{User: c.Account}
	}
	return c.From
}

// Copy returns a copy of c that may be modified freely.
func (c *Channel) Copy() *Channel {
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}

// Parked is one parked call.
type Parked struct {
	Customer string
	// Key identifies the park within the customer: the extension ("333"),
	// "*" and the random number ("*7250"), or "slot:" and the slot ("slot:1").
	Key string
	// Channel is the parked leg.
	Channel string
	// Kind is one of the Kind* constants.
	Kind string
	// Number is what was parked on, as announced: "333", "7250", "1".
	Number string
	// Code is what a user dials to retrieve the call ("*71333").
	Code string
	// Parker is the account that parked the call.
	Parker string
	// Party is the party waiting on hold.
	Party events.Party
	// Since is when the call was parked.
	Since time.Time
	// Due is when automatic retrieval should return the call to the parker;
	// zero when it is off.
	Due time.Time
	// Returns counts the automatic returns started for this park.
	Returns int
}

// Copy returns a copy of p that may be modified freely.
func (p *Parked) Copy() *Parked {
	if p == nil {
		return nil
	}
	cp := *p
	return &cp
}

// Event returns p as the Park of a control-plane event.
func (p *Parked) Event() *events.Park {
	return &events.Park{
		Number: p.Number,
		Kind:   p.Kind,
		Code:   p.Code,
		Parker: p.Parker,
		Parked: p.Party,
		Since:  p.Since,
	}
}

// ExtensionKey is the park key of an extension number.
func ExtensionKey(number string) string { return number }

// RandomKey is the park key of a random number: "*" + number.
func RandomKey(number string) string { return "*" + number }

// SlotKey is the park key of a slot: "slot:" + slot.
func SlotKey(slot string) string { return "slot:" + slot }

// Registration is the set of contacts an account has registered through
// one node ("" on a single node that names none).
type Registration struct {
	Customer string
	Account  string
	Node     string
	Contacts []events.Contact
}

// Copy returns a deep copy of r.
func (r *Registration) Copy() *Registration {
	if r == nil {
		return nil
	}
	cp := *r
	cp.Contacts = slices.Clone(r.Contacts)
	return &cp
}
