package core

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/sdp"
	"github.com/callpark/callpark/events"
)

// channel is one SIP leg: inbound (a phone's INVITE the core answers) or
// outbound (an INVITE the core sent). Mutable fields are guarded by mu
// unless atomic. A leg runs no goroutine of its own: its SIP requests
// arrive through dispatch, its RTP through its media poller (reader.go),
// its music from a hub shard.
type channel struct {
	core      *Core
	id        string
	customer  string
	account   string
	trunk     string
	direction string
	inbound   bool
	from, to  events.Party
	dialed    string
	callID    string
	created   time.Time
	// linked is the conversation this leg belongs to (events.Event.Linked).
	linked string
	// dialedFor is the leg an outbound leg was dialed for (maybe on
	// another node); events name it as Peer.
	dialedFor string
	// dial is the control plane's name of the dial that made an outbound
	// leg (events.Command.Dial), on every event of the leg.
	dial string
	// internal legs join legs of two nodes (cluster.go): they are the
	// core's own business, never published, and end with their partner.
	internal bool

	// ctx ends when the leg is over; cancel ends it from our side.
	ctx    context.Context
	cancel context.CancelFunc

	// steps orders the commands and compound actions on the leg
	// (steps.go).
	steps sync.Mutex
	// answerMu serialises the responses to an inbound leg's INVITE.
	answerMu     sync.Mutex
	answeredOnce sync.Once

	mu sync.Mutex
	// dlg is the leg's dialog: an inbound leg's from its INVITE on, an
	// outbound leg's once answered.
	dlg *dialog
	// inv and invTx are an inbound leg's INVITE and its transaction, kept
	// until the ACK of the answer (or the final response): responses are
	// built from it.
	inv   *sip.Request
	invTx sip.ServerTransaction
	// invOffer is the INVITE's SDP, read once at admission, until answered.
	invOffer *sdp.Session
	// acks wait for the ACK of a 2xx we sent, by the INVITE's CSeq.
	acks     map[uint32]chan *sip.Request
	sdp      legMedia
	answered bool
	// answering: an answer waits for the caller's ACK.
	answering bool
	rejected  bool // a final response is on its way
	// hungUp: a hangup came while an outbound leg was still ringing; a
	// 200 OK crossing it is ACKed and ended with BYE (runDial).
	hungUp bool
	ended  bool
	// remotes are the addresses the far end may send in-dialog requests
	// from over UDP (see owns).
	remotes []netip.AddrPort
	// checkedAt is when the far end last proved alive (liveness.go).
	checkedAt time.Time
	// heldByPhone is true while the phone on this leg holds the call.
	heldByPhone bool
	// refers pending a refer_notify, by ReferID.
	refers map[string]*pendingRefer
	// notifying are the final REFER NOTIFYs on their way, each closed when
	// sent and answered (or failed); hangup sends its BYE after them.
	notifying []chan struct{}
	// dialCancel cancels outbound legs being dialed for this inbound leg.
	dialCancel context.CancelFunc

	out sender
	// dtmf is the reader's digit state (reader.go).
	dtmf dtmfState
	// peer is the channel whose audio is forwarded to this one.
	peer atomic.Pointer[channel]
	// answeredCh is closed once the leg is up with media.
	answeredCh chan struct{}
	// decision is closed by the control plane's first command on the leg.
	decision decision
}

func (c *Core) newChannel(id, direction string) *channel {
	ch := &channel{
		core:       c,
		id:         id,
		linked:     id,
		direction:  direction,
		inbound:    direction == events.Inbound,
		created:    time.Now(),
		answeredCh: make(chan struct{}),
		decision:   decision{ch: make(chan struct{})},
	}
	ch.out.ch = ch
	return ch
}

// event returns an event about this channel with its identity filled in.
func (ch *channel) event(typ string) *events.Event {
	customer := ch.customer
	if ch.internal {
		customer = "" // never published (Core.publish)
	}
	e := &events.Event{
		Type:      typ,
		Customer:  customer,
		Call:      ch.id,
		Linked:    ch.linked,
		Direction: ch.direction,
		Account:   ch.account,
		Trunk:     ch.trunk,
		From:      ch.from,
		To:        ch.to,
		Dialed:    ch.dialed,
		Dial:      ch.dial,
	}
	if p := ch.peer.Load(); p != nil {
		e.Peer = p.id
	}
	return e
}

func (ch *channel) isAnswered() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.answered
}

// dialogOf returns the leg's dialog (nil when it has none).
func (ch *channel) dialogOf() *dialog {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.dlg
}

// hangup ends the leg with BYE, a final response or CANCEL as its state asks.
func (ch *channel) hangup(code int, reason string) {
	ch.mu.Lock()
	answering := ch.answering
	// A dial's 200 OK being taken in: its dialog is there, its ACK not yet.
	takingAnswer := !ch.inbound && ch.dlg != nil && !ch.answered
	ch.mu.Unlock()
	if answering || takingAnswer {
		// The 200 OK is out (or in): wait for the ACK, then end with BYE.
		ch.waitAnnounced()
	}
	ch.mu.Lock()
	answered := ch.answered
	ended := ch.ended
	dialCancel := ch.dialCancel
	dialed := !ch.inbound && ch.dlg != nil // set by the dial when it is answered, under mu
	if !ch.inbound && !dialed {
		ch.hungUp = true // an answer on its way now is not taken (runDial)
	}
	// Only one final response may go out on an unanswered inbound leg: a
	// reject and a shutdown hangup can race.
	rejected := ch.rejected
	if ch.inbound && !answered {
		ch.rejected = true
	}
	ch.mu.Unlock()
	if ended || (ch.inbound && !answered && rejected) {
		return
	}
	if answered {
		ch.awaitNotifies(5 * time.Second)
	}
	if dialCancel != nil {
		dialCancel()
	}
	switch {
	case ch.inbound && !answered:
		if code == 0 {
			code = sip.StatusTemporarilyUnavailable
		}
		if reason == "" {
			reason = reasonPhrase(code)
		}
		// The leg lasts until the caller's ACK (or the transaction's
		// end): a late command finds it refused, not gone.
		tx := ch.reject(code, reason)
		if tx == nil {
			ch.finish(sip.StatusRequestTerminated, "rejected")
			return
		}
		go func() {
			select {
			case <-tx.Acks():
			case <-tx.Done():
			}
			ch.finish(sip.StatusRequestTerminated, "rejected")
		}()
	case answered:
		if err := ch.core.bye(ch); err != nil {
			ch.core.log.Debug("bye failed", "call", ch.id, "err", err)
		}
		ch.finish(0, "hangup")
	default:
		// Outbound and still ringing: cancelling its context sends CANCEL.
		ch.cancel()
	}
}

// finish marks the leg over once, tears down its media and publishes
// call.ended.
func (ch *channel) finish(code int, reason string) {
	ch.mu.Lock()
	if ch.ended {
		ch.mu.Unlock()
		return
	}
	ch.ended = true
	dialCancel := ch.dialCancel
	tx := ch.invTx
	ch.invTx, ch.inv, ch.invOffer = nil, nil, nil
	acks := ch.acks
	ch.acks = nil
	ch.mu.Unlock()
	if dialCancel != nil {
		dialCancel()
	}
	for _, a := range acks {
		close(a)
	}
	if tx != nil {
		tx.Terminate()
	}
	ch.core.decisions.Cancel(ch.id)
	ch.out.stop()
	ch.closeMedia()
	if p := ch.peer.Swap(nil); p != nil {
		detach(p, ch)
		if p.internal {
			// The other node's leg has nobody left to talk to here.
			go p.hangup(0, "")
		}
	}
	ch.cancel()
	ch.core.forget(ch)
	e := ch.event(events.CallEnded)
	e.Code = code
	e.Reason = reason
	ch.core.publish(e)
	ch.core.metrics.activeCalls.Dec()
}
