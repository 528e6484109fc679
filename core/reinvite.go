package core

import (
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/sdp"
	"github.com/callpark/callpark/events"
)

// reInvite renegotiates a leg's media at the phone's request and reports
// hold and resume. Nothing is published and no media changes unless the
// request matches the leg's dialog and carries a readable offer. A hold
// (sendonly, inactive, or 0.0.0.0) is answered recvonly or inactive and
// our sending stops; call.held goes out before the 200 OK, so that
// whatever the phone does next (dial the park code) comes after it.
func (c *Core) reInvite(req *sip.Request, tx sip.ServerTransaction) {
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil {
		respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if !ch.owns(req) {
		c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
		return
	}
	if !ch.upOrAnswering() {
		// A re-INVITE before our answer is ACKed (RFC 3261 14.2: 491).
		respond(req, tx, sip.StatusRequestPending, "Request Pending")
		return
	}
	body := req.Body()
	if len(body) == 0 {
		c.offerlessReInvite(ch, req, tx)
		return
	}
	offer, err := sdp.Parse(body)
	if err != nil || offer.AudioMedia() == nil {
		c.reject(req, tx, sip.StatusNotAcceptableHere, "Malformed SDP", "bad_sdp")
		return
	}
	m := offer.AudioMedia()
	if _, ok := m.Negotiate(); !ok {
		respond(req, tx, sip.StatusNotAcceptableHere, "No Common Codec")
		return
	}
	if m.Proto == sdp.ProfileSRTP && !secureTransport(req) {
		respond(req, tx, sip.StatusNotAcceptableHere, "SRTP Requires TLS")
		return
	}
	hold := m.Hold()
	ch.waitAnnounced()
	ch.mu.Lock()
	changed := ch.heldByPhone != hold
	ch.heldByPhone = hold
	ch.mu.Unlock()
	if changed {
		typ := events.CallResumed
		if hold {
			typ = events.CallHeld
		}
		c.publish(ch.event(typ))
	}
	answer, err := ch.answerOffer(offer)
	if err != nil {
		respond(req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
		return
	}
	ch.out.setMuted(hold)
	c.answerReInvite(ch, req, tx, answer)
}

// answerReInvite sends the 200 OK of a re-INVITE and waits for its ACK.
func (c *Core) answerReInvite(ch *channel, req *sip.Request, tx sip.ServerTransaction, body []byte) *sip.Request {
	d := ch.dialogOf()
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", body)
	res.AppendHeader(c.contact(d.transport))
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack := ch.expectAck(req.CSeq().SeqNo)
	if err := tx.Respond(res); err != nil {
		return nil
	}
	a, _ := ch.waitAck(tx, res, ack)
	return a
}

// offerlessReInvite answers a re-INVITE without SDP with our offer; the
// ACK carries the answer (RFC 3264 5).
func (c *Core) offerlessReInvite(ch *channel, req *sip.Request, tx sip.ServerTransaction) {
	secure := ch.out.connection() != nil && ch.out.connection().Secured()
	offer, err := ch.offer(secure)
	if err != nil {
		respond(req, tx, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	ack := c.answerReInvite(ch, req, tx, offer)
	if ack == nil || len(ack.Body()) == 0 {
		return
	}
	ans, err := sdp.Parse(ack.Body())
	if err != nil {
		return
	}
	if err := ch.takeAnswer(ans); err != nil {
		c.noisy.Info("unusable answer in an ACK", "call", ch.id, "err", err)
		return
	}
	hold := ans.AudioMedia().Hold()
	ch.mu.Lock()
	changed := ch.heldByPhone != hold
	ch.heldByPhone = hold
	ch.mu.Unlock()
	ch.out.setMuted(hold)
	if changed {
		typ := events.CallResumed
		if hold {
			typ = events.CallHeld
		}
		c.publish(ch.event(typ))
	}
}
