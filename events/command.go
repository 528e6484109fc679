package events

import (
	"encoding/json"
	"fmt"
)

// Core command operations, sent by the control plane as NATS requests on
// CommandSubject(node, op) to the core owning the leg. The core answers each
// with a Reply.
const (
	// OpRing sends 180 Ringing on an inbound leg.
	OpRing = "ring"
	// OpAnswer answers an inbound leg (200 OK with SDP); the reply comes once
	// the 200 OK is out (media flows, commands may follow at once), and
	// call.answered once the caller ACKs it.
	OpAnswer = "answer"
	// OpReject answers an unanswered inbound leg with Code (4xx-6xx).
	OpReject = "reject"
	// OpHangup ends a leg: BYE when up, Code (default 480) when unanswered,
	// CANCEL when an outbound leg still rings.
	OpHangup = "hangup"
	// OpPlay plays Prompts one after the other on a leg that is up. The core
	// publishes call.playback_done with Playback when they are over. While a
	// prompt plays, music and bridged audio to that leg are suspended. With
	// HangupAfter the core ends the leg after the last prompt.
	OpPlay = "play"
	// OpMusic starts (On) or stops music on hold towards a leg; Music names the
	// music class ("" is the default class).
	OpMusic = "music"
	// OpDial originates an outbound leg to Account (every registered contact,
	// forked) or to URI, for the inbound leg Call. The reply carries the new
	// leg's id at once; events follow (call.ringing, call.answered,
	// call.dial_failed). With Bridge the core answers Call (if not yet up) and
	// bridges the two legs when the new one answers; while it rings the core
	// sends 180 on Call.
	OpDial = "dial"
	// OpBridge connects the media of two legs that are up (Call and Peer),
	// stopping music on both.
	OpBridge = "bridge"
	// OpUnbridge disconnects Call from whatever it is bridged with.
	OpUnbridge = "unbridge"
	// OpReferNotify ends a REFER (call.transfer) with a final NOTIFY carrying
	// "SIP/2.0 <Code> <reason>" as message/sipfrag.
	OpReferNotify = "refer_notify"
	// OpPresence sets the state of a watchable entity of Customer: Target
	// is its SIP user ("711" for parking slot 1), On means busy (a dialog
	// in state confirmed), From the far party shown on phones. The core
	// NOTIFYs every dialog-event (BLF) subscriber of the entity. No Call.
	OpPresence = "presence"
	// OpIdentity tells the phone on Call who it now talks to (From): an
	// in-dialog UPDATE carrying P-Asserted-Identity and Remote-Party-ID
	// (RFC 3325; the connected identity of RFC 4916), e.g. the caller's
	// number on the phone that retrieved a parked call. Best effort: the
	// reply comes at once, a phone that refuses UPDATE changes nothing.
	OpIdentity = "identity"
)

// Command is one request to the core. Only the fields of its Op matter.
type Command struct {
	V        int    `json:"v"`
	Op       string `json:"op"`
	Customer string `json:"customer,omitempty"`
	// Node is the core the command is for; empty means the node owning
	// Call (NodeOf), or AllNodes for presence. A dial goes to the node the
	// account registered through, which joins the answered leg with Call
	// on Call's node; a bridge of legs on two nodes is joined the same way
	// (an internal leg between the cores).
	Node string `json:"node,omitempty"`
	// Call is the leg the command acts on.
	Call string `json:"call,omitempty"`
	// Peer is the second leg of bridge.
	Peer string `json:"peer,omitempty"`
	// Code is a SIP status (reject, hangup, refer_notify).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Prompts are sound names (play), e.g. "parked", "digit-3", "star".
	Prompts     []string `json:"prompts,omitempty"`
	Playback    string   `json:"playback,omitempty"`
	HangupAfter bool     `json:"hangup_after,omitempty"`
	// On and Music drive the music command.
	On    bool   `json:"on,omitempty"`
	Music string `json:"music,omitempty"`
	// Dial fields.
	Account   string `json:"account,omitempty"`
	URI       string `json:"uri,omitempty"`
	From      Party  `json:"from,omitempty"`
	AlertInfo string `json:"alert_info,omitempty"`
	TimeoutMs int    `json:"timeout_ms,omitempty"`
	Bridge    bool   `json:"bridge,omitempty"`
	// Trunk names the customer's trunk a dial to URI goes out through: the
	// core answers the carrier's digest challenge with the trunk's
	// credentials (from its directory) and asserts From as the caller's
	// identity (P-Asserted-Identity).
	Trunk string `json:"trunk,omitempty"`
	// Dial is the control plane's name for a dial (OpDial): the core puts
	// it on every event of the new leg (Event.Dial), so the outcome finds
	// the dial waiting for it even before the reply names the leg.
	Dial string `json:"dial,omitempty"`
	// ReferID names the REFER to notify.
	ReferID string `json:"refer_id,omitempty"`
	// Target is the entity of presence.
	Target string `json:"target,omitempty"`
}

// Reply is the core's answer to a Command.
type Reply struct {
	V     int    `json:"v"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Code is a stable error code: "not_found", "bad_state", "invalid_request",
	// "unavailable", "internal".
	Code string `json:"code,omitempty"`
	// Call is the new leg id of a dial.
	Call string `json:"call,omitempty"`
}

// Error codes in replies.
const (
	ErrNotFound       = "not_found"
	ErrBadState       = "bad_state"
	ErrInvalidRequest = "invalid_request"
	ErrUnavailable    = "unavailable"
	ErrInternal       = "internal"
)

// ReplyError is a failed Reply as a Go error.
type ReplyError struct {
	Op   string
	Code string
	Msg  string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("core %s: %s: %s", e.Op, e.Code, e.Msg)
}

// Encode returns the versioned JSON of c.
func (c *Command) Encode() ([]byte, error) {
	if c.V == 0 {
		c.V = Version
	}
	return json.Marshal(c)
}

// DecodeCommand parses a command and checks its version and op.
func DecodeCommand(data []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("bad command: %w", err)
	}
	if c.V != Version {
		return nil, fmt.Errorf("unsupported command version %d", c.V)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks that c has what its Op needs.
func (c *Command) Validate() error {
	need := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("%s command without %s", c.Op, what)
		}
		return nil
	}
	if c.Node != "" && c.Node != AllNodes && !ValidNode(c.Node) {
		return fmt.Errorf("%s command for invalid node %q", c.Op, c.Node)
	}
	switch c.Op {
	case "":
		return fmt.Errorf("command without op")
	case OpRing, OpAnswer, OpHangup, OpMusic, OpUnbridge:
		return need(c.Call != "", "call")
	case OpIdentity:
		if err := need(c.Call != "", "call"); err != nil {
			return err
		}
		return need(c.From.User != "", "from.user")
	case OpReject:
		if err := need(c.Call != "", "call"); err != nil {
			return err
		}
		return need(c.Code >= 400 && c.Code <= 699, "a 4xx-6xx code")
	case OpPlay:
		if err := need(c.Call != "", "call"); err != nil {
			return err
		}
		return need(len(c.Prompts) > 0, "prompts")
	case OpBridge:
		if err := need(c.Call != "", "call"); err != nil {
			return err
		}
		return need(c.Peer != "" && c.Peer != c.Call, "a peer other than call")
	case OpReferNotify:
		if err := need(c.Call != "", "call"); err != nil {
			return err
		}
		return need(c.ReferID != "", "refer_id")
	case OpDial:
		if err := need(c.Customer != "", "customer"); err != nil {
			return err
		}
		return need(c.Account != "" || c.URI != "", "account or uri")
	case OpPresence:
		if err := need(c.Customer != "", "customer"); err != nil {
			return err
		}
		return need(c.Target != "", "target")
	}
	return fmt.Errorf("unknown op %q", c.Op)
}

// TargetNode returns the node c is addressed to.
func (c *Command) TargetNode() string {
	switch {
	case c.Node != "":
		return c.Node
	case c.Op == OpPresence:
		return AllNodes
	}
	return NodeOf(c.Call)
}

// Encode returns the versioned JSON of r.
func (r *Reply) Encode() []byte {
	r.V = Version
	b, _ := json.Marshal(r)
	return b
}

// Err returns nil for a successful reply and a *ReplyError otherwise.
func (r *Reply) Err(op string) error {
	if r.OK {
		return nil
	}
	return &ReplyError{Op: op, Code: r.Code, Msg: r.Error}
}
