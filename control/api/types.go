package api

import (
	"time"

	"github.com/callpark/callpark/events"
)

// Prefix is the root of the API subjects: callpark.v1.api.<customer>.<op>.
const Prefix = "callpark.v1.api"

// TokenHeader is the request header carrying the customer's API token.
const TokenHeader = "Callpark-Token"

// Operations, the last subject token.
const (
	OpPark     = "park"
	OpRetrieve = "retrieve"
	OpSlots    = "slots"
	OpParked   = "parked"
	OpCalls    = "calls"
)

// Ops lists every operation.
var Ops = []string{OpPark, OpRetrieve, OpSlots, OpParked, OpCalls}

// Subject is the subject of operation op for customer.
func Subject(customer, op string) string { return Prefix + "." + customer + "." + op }

// Error codes.
const (
	CodeNotFound       = "not_found"       // customer, account, call, slot or extension unknown
	CodeSlotBusy       = "slot_busy"       // a call is already parked on that slot or number
	CodeForbidden      = "forbidden"       // bad token, API off, permission missing
	CodeNotParked      = "not_parked"      // nothing parked where a retrieve looked
	CodeInvalidRequest = "invalid_request" // malformed JSON, missing or conflicting fields
	CodeUnavailable    = "unavailable"     // the media core does not answer
	CodeInternal       = "internal"        // anything else
)

// Error is a failed request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorReply is the body of a failed request.
type ErrorReply struct {
	Error *Error `json:"error"`
}

// ParkRequest parks the other party of Account's call (CallID, or the
// account's current call) on exactly one of Slot, Extension or Random.
type ParkRequest struct {
	Token     string `json:"token,omitempty"`
	Account   string `json:"account"`
	CallID    string `json:"call_id,omitempty"`
	Slot      string `json:"slot,omitempty"`
	Extension string `json:"extension,omitempty"`
	Random    bool   `json:"random,omitempty"`
}

// ParkReply is what a park did; Parked.Code is the retrieval code.
type ParkReply struct {
	Parked ParkedCall `json:"parked"`
}

// RetrieveRequest rings To (an account's extension or a sip: URI) with the
// call parked on exactly one of Slot, Extension or Random (the random
// number).
type RetrieveRequest struct {
	Token     string `json:"token,omitempty"`
	Slot      string `json:"slot,omitempty"`
	Extension string `json:"extension,omitempty"`
	Random    string `json:"random,omitempty"`
	To        string `json:"to"`
}

// RetrieveReply says the destination rings: CallID is the new leg. The
// parked call is taken at once; call.retrieved follows on answer, or the
// call goes back to its spot if nobody answers.
type RetrieveReply struct {
	Status string     `json:"status"` // "ringing"
	CallID string     `json:"call_id"`
	Parked ParkedCall `json:"parked"`
}

// Request is the body of slots and parked (only the token, if not in the
// header); an empty body is fine.
type Request struct {
	Token string `json:"token,omitempty"`
}

// SlotsReply lists every configured slot.
type SlotsReply struct {
	Slots []Slot `json:"slots"`
}

// Slot is one parking slot.
type Slot struct {
	Slot   string      `json:"slot"`
	Label  string      `json:"label,omitempty"`
	Busy   bool        `json:"busy"`
	Parked *ParkedCall `json:"parked,omitempty"`
}

// ParkedReply lists the customer's parked calls, oldest first.
type ParkedReply struct {
	Parked []ParkedCall `json:"parked"`
}

// ParkedCall is one parked call.
type ParkedCall struct {
	CallID string       `json:"call_id"` // the parked leg
	Kind   string       `json:"kind"`    // slot, extension or random
	Number string       `json:"number"`
	Code   string       `json:"code"` // what a phone dials to retrieve it
	Parker string       `json:"parker,omitempty"`
	Caller events.Party `json:"caller"`
	Since  time.Time    `json:"since"`
	// Age is how long the call has been parked, in seconds.
	Age float64 `json:"age_s"`
	// Due is when automatic retrieval returns the call; absent when off.
	Due *time.Time `json:"due,omitempty"`
}

// CallsRequest asks for Account's current calls.
type CallsRequest struct {
	Token   string `json:"token,omitempty"`
	Account string `json:"account"`
}

// CallsReply lists an account's calls, newest first.
type CallsReply struct {
	Account string `json:"account"`
	Calls   []Call `json:"calls"`
}

// Call is one of an account's legs.
type Call struct {
	CallID    string `json:"call_id"`
	State     string `json:"state"` // ringing, up, held, parked
	Direction string `json:"direction"`
	// Party is the other end: the caller of an inbound leg, the callee of
	// an outbound one, or the party of the leg it is bridged with.
	Party      events.Party `json:"party"`
	PeerCallID string       `json:"peer_call_id,omitempty"`
	Since      time.Time    `json:"since"`
}
