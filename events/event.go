package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Event types published by the media core, one SIP leg ("call") each.
const (
	// CallStarted: an inbound INVITE was authenticated and waits for a
	// decision (Direction "inbound"), or the core originated a leg on a dial
	// command (Direction "outbound").
	CallStarted = "call.started"
	// CallRinging: the far end of an outbound leg rings (180/183).
	CallRinging = "call.ringing"
	// CallAnswered: the leg is up (inbound answered by the core, or an
	// outbound leg answered by the phone).
	CallAnswered = "call.answered"
	// CallHeld: the phone on this leg put the call on hold (re-INVITE with
	// a=sendonly or a=inactive).
	CallHeld = "call.held"
	// CallResumed: the phone on this leg took the call off hold.
	CallResumed = "call.resumed"
	// CallTransfer: the phone on this leg asked for a blind transfer (REFER).
	// The control plane must answer with a refer_notify command.
	CallTransfer = "call.transfer"
	// CallDialFailed: an outbound leg ended before answer (busy, no answer,
	// unavailable, cancelled). Code holds the SIP status.
	CallDialFailed = "call.dial_failed"
	// CallPlaybackDone: a play command finished (or was stopped).
	CallPlaybackDone = "call.playback_done"
	// CallDTMF: a DTMF digit arrived on the leg (RFC 4733).
	CallDTMF = "call.dtmf"
	// CallEnded: the leg is gone (BYE, CANCEL, error). Final.
	CallEnded = "call.ended"
	// RegistrationUpdated: an account's set of registered contacts changed.
	RegistrationUpdated = "registration.updated"
	// TrunkRegistered: a trunk's registration to its carrier succeeded
	// (each refresh too); TrunkRegistrationFailed: it failed (Code, Reason),
	// retried in 5 s. Call is "trunk", Trunk names it.
	TrunkRegistered         = "trunk.registered"
	TrunkRegistrationFailed = "trunk.registration_failed"
)

// Event types published by the control plane.
const (
	CallParked    = "call.parked"
	CallRetrieved = "call.retrieved"
	CallAbandoned = "call.abandoned"
	CallReturned  = "call.returned"
	// CallLost: a parked call's media was on a node that died or
	// restarted; the park is gone (its slot is free).
	CallLost = "call.lost"
	SlotBusy = "slot.busy"
	SlotFree = "slot.free"
)

// Event types of automatic retrieval, published by the control plane. A
// return that is answered publishes CallReturned, then CallRetrieved.
const (
	// CallReturnFailed: an automatic return reached nobody (Reason "busy",
	// "no_answer", "unreachable", ...; Account is who was rung). Reason
	// "gave_up" is the last one: the caller hears goodbye and is hung up.
	CallReturnFailed = "call.return_failed"
	// CallForwarded: an automatic return rings the parker's forward_to
	// (Account), as the parker's answering mode says.
	CallForwarded = "call.forwarded"
)

// Directions of a leg.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Party identifies one end of a leg.
type Party struct {
	// User is the SIP user part (extension, E.164 number, ...).
	User string `json:"user,omitempty"`
	// Display is the display name, if any.
	Display string `json:"display,omitempty"`
	// URI is the full SIP URI.
	URI string `json:"uri,omitempty"`
}

func (p Party) String() string {
	if p.Display != "" {
		return fmt.Sprintf("%q <%s>", p.Display, p.User)
	}
	return p.User
}

// Contact is one registered binding of an account.
type Contact struct {
	URI     string    `json:"uri"`
	Source  string    `json:"source"`
	Expires time.Time `json:"expires"`
}

// Park describes a parked call in control-plane events.
type Park struct {
	// Number is what was parked on: the extension, the random number or the slot.
	Number string `json:"number"`
	// Kind is "extension", "random" or "slot".
	Kind string `json:"kind"`
	// Code is what a user dials to retrieve the call ("*71333", "*71*7250").
	Code string `json:"code,omitempty"`
	// Parker is the account that parked the call.
	Parker string `json:"parker,omitempty"`
	// Parked is the party waiting on hold.
	Parked Party `json:"parked"`
	// By is the account that retrieved (call.retrieved).
	By string `json:"by,omitempty"`
	// Since is when the call was parked.
	Since time.Time `json:"since,omitempty"`
}

// Event is one thing that happened. Fields that do not apply stay empty.
type Event struct {
	V    int       `json:"v"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Customer owns the leg; empty only for requests the core could not
	// attribute (they are never published).
	Customer string `json:"customer"`
	// Call is the leg (channel) id; it names its node (NodeOf).
	Call string `json:"call"`
	// Node is the node whose core published a core event.
	Node string `json:"node,omitempty"`
	// Source is who published it: SourceCore or SourceApp (the default).
	Source string `json:"source,omitempty"`
	// Peer is the leg this one is bridged with when the event is published
	// ("" when none).
	Peer string `json:"peer,omitempty"`
	// DialedFor is, for an outbound leg, the leg it was dialed for: the
	// caller an extension call, a retrieval or an automatic return rings
	// for. It never changes over the leg's life.
	DialedFor string `json:"dialed_for,omitempty"`
	// Dial is, for an outbound leg, the name its dial command gave it
	// (Command.Dial); it never changes over the leg's life.
	Dial string `json:"dial,omitempty"`
	// Linked is the leg that began this conversation (Asterisk's linkedid):
	// a leg's own id, or for a leg dialed for another leg, that leg's
	// Linked. It never changes over a leg's life; consumers that must see
	// one conversation's events in order (the control plane) order by it.
	Linked    string `json:"linked,omitempty"`
	Direction string `json:"direction,omitempty"`
	// Account is the authenticated account of an inbound leg, or the dialed
	// account of an outbound leg.
	Account string `json:"account,omitempty"`
	// Trunk names the trunk an inbound leg came in through.
	Trunk string `json:"trunk,omitempty"`
	From  Party  `json:"from,omitempty"`
	To    Party  `json:"to,omitempty"`
	// Dialed is the request-URI user of an inbound leg ("*70333", "201").
	Dialed string `json:"dialed,omitempty"`
	// Code is a SIP status code (dial_failed, ended).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Target is a REFER's Refer-To user (call.transfer).
	Target string `json:"target,omitempty"`
	// ReferID identifies a REFER for refer_notify.
	ReferID string `json:"refer_id,omitempty"`
	// Playback identifies a play command (call.playback_done).
	Playback string `json:"playback,omitempty"`
	// Digit is a DTMF digit (call.dtmf).
	Digit string `json:"digit,omitempty"`
	// Contacts lists an account's bindings (registration.updated).
	Contacts []Contact `json:"contacts,omitempty"`
	// Park is set on control-plane parking events.
	Park *Park `json:"park,omitempty"`
	// Slot is set on slot events.
	Slot string `json:"slot,omitempty"`
}

// Subject returns the subject e is published on.
func (e *Event) Subject() string {
	src := e.Source
	if src == "" {
		src = SourceApp
	}
	return EventSubject(e.Customer, src, e.Call, e.Type)
}

// Encode returns the versioned JSON of e.
func (e *Event) Encode() ([]byte, error) {
	e.Stamp()
	return e.AppendJSON(nil)
}

// EncodeTo appends the versioned JSON of e to buf: what Encode returns,
// without a slice of its own.
func (e *Event) EncodeTo(buf *bytes.Buffer) error {
	e.Stamp()
	b, err := e.AppendJSON(buf.AvailableBuffer())
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

// Stamp fills in what an event leaves unset: the version, the time, the
// source (app).
func (e *Event) Stamp() {
	if e.V == 0 {
		e.V = Version
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Source == "" {
		e.Source = SourceApp
	}
}

// DecodeEvent parses an event and checks its version.
func DecodeEvent(data []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("events: bad event: %w", err)
	}
	if e.V != Version {
		return nil, fmt.Errorf("events: unsupported event version %d", e.V)
	}
	if e.Type == "" {
		return nil, fmt.Errorf("events: event without type")
	}
	return &e, nil
}
