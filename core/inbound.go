package core

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media/sdp"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/stateless"
	"github.com/callpark/callpark/events"
)

// middleware runs before each of diago's handlers, inside the ingress
// guard: it admits new INVITEs (lame duck, overload, trunk or digest
// identity), and lets an in-dialog request through only when it matches its
// leg's dialog (dialog.go); re-INVITEs are then watched for hold and resume.
func (c *Core) middleware(next sipgo.RequestHandler) sipgo.RequestHandler {
	return c.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.INVITE:
			if tag, ok := req.To().Params.Get("tag"); ok && tag != "" {
				c.reInvite(req, tx, next)
				return
			}
			c.admit(req, tx, next)
		case sip.BYE, sip.INFO, sip.NOTIFY, sip.ACK:
			if stateless.IsACK(req) {
				return // the ACK of a refusal: nothing waits for it
			}
			if c.inDialog(req, tx) {
				next(req, tx)
			}
		default:
			next(req, tx)
		}
	})
}

func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

// admit checks a new INVITE and decides who sent it.
func (c *Core) admit(req *sip.Request, tx sip.ServerTransaction, next sipgo.RequestHandler) {
	if c.draining.Load() {
		refuseStateless(req, tx, "30")
		return
	}
	if why := c.overloaded(); why != "" {
		c.refuseOverload(req, tx, why)
		return
	}
	if code, reason := checkOffer(req); code != 0 {
		c.metrics.badRequests.WithLabelValues(reason).Inc()
		_ = stateless.Respond(req, tx, sip.NewResponseFromRequest(req, code, reason, nil))
		return
	}
	id, internal, err := c.internalIdentity(req)
	if err != nil {
		c.reject(req, tx, sip.StatusForbidden, "Forbidden", "bad_internal")
		return
	}
	if src, err := netip.ParseAddrPort(req.Source()); err == nil && !internal {
		if cust, trunk, ok := c.cfg.Directory.Trunk(src, req.Recipient.User); ok {
			id = identity{customer: cust, trunk: trunk}
		}
	}
	if id.customer == "" && !internal {
		who, ok := c.reg.Authenticate(req, tx)
		if !ok {
			return
		}
		id = identity{customer: who.Customer, account: who.Account}
	}
	if !internal {
		if code, reason := c.checkSRTP(req, id.customer, id.account); code != 0 {
			c.reject(req, tx, code, reason, "srtp")
			return
		}
	}
	c.mu.Lock()
	c.pending[req.CallID().Value()] = id
	c.mu.Unlock()
	next(req, tx)
}

// checkOffer validates the SDP offer of a new INVITE: the core anchors media
// and needs an offer with G.711.
func checkOffer(req *sip.Request) (int, string) {
	body := req.Body()
	if len(body) == 0 {
		return sip.StatusNotAcceptableHere, "SDP Offer Required"
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
		return sip.StatusUnsupportedMediaType, "Unsupported Media Type"
	}
	sd := sdp.SessionDescription{}
	if err := sdp.Unmarshal(body, &sd); err != nil || len(sd.Values("v")) != 1 || len(sd.Values("m")) == 0 {
		return sip.StatusBadRequest, "Malformed SDP"
	}
	if _, err := connectionInformation(sd); err != nil {
		return sip.StatusBadRequest, "Malformed SDP Connection"
	}
	md, err := sd.MediaDescription("audio")
	if err != nil {
		return sip.StatusNotAcceptableHere, "No Audio Stream"
	}
	for _, f := range md.Formats {
		if f == "0" || f == "8" {
			return 0, ""
		}
	}
	return sip.StatusNotAcceptableHere, "No Common Codec"
}

// offerHolds tells whether an SDP offer puts the call on hold.
func offerHolds(body []byte) (hold bool, ok bool) {
	if len(body) == 0 {
		return false, false
	}
	sd := sdp.SessionDescription{}
	if err := sdp.Unmarshal(body, &sd); err != nil {
		return false, false
	}
	ci, err := connectionInformation(sd)
	if err != nil {
		return false, false // diago would read it next: refuse it here
	}
	switch sd.MediaDirection() {
	case sdp.ModeSendonly, "inactive":
		return true, true
	}
	if ci.IP != nil && ci.IP.IsUnspecified() {
		return true, true
	}
	return false, true
}

// answerReadable checks an SDP answer (or early media) of a far end before
// diago reads it; no body is fine.
func answerReadable(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	sd := sdp.SessionDescription{}
	if err := sdp.Unmarshal(body, &sd); err != nil {
		return fmt.Errorf("sdp: %w", err)
	}
	_, err := connectionInformation(sd)
	return err
}

// connectionInformation is sdp.ConnectionInformation behind a check of its
// own: diago's indexes the fields of c= without counting them, so "c=0"
// panics (found by FuzzOffer; worth reporting upstream). Every c= line,
// session or media level, needs network type, address type and address.
func connectionInformation(sd sdp.SessionDescription) (sdp.ConnectionInformation, error) {
	for _, v := range sd.Values("c") {
		if len(strings.Fields(v)) < 3 {
			return sdp.ConnectionInformation{}, fmt.Errorf("sdp: malformed connection line %q", truncate(v, 60))
		}
	}
	return sd.ConnectionInformation()
}

// reInvite lets diago renegotiate, then reports hold or resume. Nothing is
// published and no media changes unless the request matches the leg's
// dialog and carries a readable offer.
func (c *Core) reInvite(req *sip.Request, tx sip.ServerTransaction, next sipgo.RequestHandler) {
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil {
		next(req, tx) // diago answers 481
		return
	}
	if !ch.owns(req) {
		c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
		return
	}
	hold, ok := offerHolds(req.Body())
	if !ok {
		if len(req.Body()) > 0 {
			c.reject(req, tx, sip.StatusNotAcceptableHere, "Malformed SDP", "bad_sdp")
			return
		}
		next(req, tx) // an offerless re-INVITE
		return
	}
	ch.waitAnnounced()
	ch.mu.Lock()
	changed := ch.heldByPhone != hold
	ch.heldByPhone = hold
	ch.mu.Unlock()
	if changed {
		// Published before the 200 OK goes out: whatever the phone does
		// next (dial the park code) must come after this event.
		typ := events.CallResumed
		if hold {
			typ = events.CallHeld
		}
		c.publish(ch.event(typ))
	}
	next(req, tx)
	ch.out.updateCodecs()
	ch.out.setMuted(hold)
}

// serveInbound owns an inbound leg for its whole life: diago hangs up when
// it returns, so it blocks until the leg ends or the core lets it go.
func (c *Core) serveInbound(d *diago.DialogServerSession) {
	callID := d.InviteRequest.CallID().Value()
	c.mu.Lock()
	id, ok := c.pending[callID]
	delete(c.pending, callID)
	c.mu.Unlock()
	if !ok {
		_ = d.Respond(sip.StatusInternalServerError, "Not Admitted", nil)
		return
	}
	if id.internal != "" {
		c.serveInternal(d, id)
		return
	}
	ch := c.inboundLeg(d, id)
	c.mu.Lock()
	c.undecided++
	c.undecidedQ = append(c.undecidedQ, ch)
	c.mu.Unlock()
	c.register(ch)
	c.metrics.calls.WithLabelValues("inbound").Inc()
	c.publish(ch.event(events.CallStarted))

	// The control plane must act on the call soon, or the caller is told
	// to try again instead of hearing nothing but 100 Trying.
	decide := time.NewTimer(c.cfg.Admission.DecisionTimeout)
	select {
	case <-ch.decision.ch:
	case <-decide.C:
		c.metrics.overload.WithLabelValues("no_decision").Inc()
		c.noisy.Warn("no decision from the control plane: new call refused", "call", ch.id)
		ch.hangup(sip.StatusServiceUnavailable, "Service Unavailable")
	case <-ch.done:
	case <-d.Context().Done():
	}
	decide.Stop()
	ch.decided()
	select {
	case <-ch.done:
	case <-d.Context().Done():
	}
	code, reason := 0, "hangup"
	if !ch.isAnswered() {
		code, reason = sip.StatusRequestTerminated, "cancelled"
		select {
		case <-ch.done:
			reason = "rejected"
		default:
		}
	}
	ch.finish(code, reason)
}

// inboundLeg makes the channel of a new inbound dialog from id and sends
// 100 Trying; the caller registers it.
func (c *Core) inboundLeg(d *diago.DialogServerSession, id identity) *channel {
	ch := c.newChannel(c.newID(), events.Inbound)
	ch.customer, ch.account, ch.trunk = id.customer, id.account, id.trunk
	ch.internal = id.internal != ""
	ch.srv = d
	ch.callID = d.InviteRequest.CallID().Value()
	ch.dialed = d.InviteRequest.Recipient.User
	ch.from = partyOf(d.InviteRequest.From())
	ch.to = partyOf(d.InviteRequest.To())
	ch.addRemote(d.InviteRequest.Source())
	if ct := d.InviteRequest.Contact(); ct != nil {
		ch.addRemoteURI(ct.Address)
	}
	ch.ctx, ch.cancel = context.WithCancel(d.Context())
	// 100 Trying goes out before the leg is findable: sipgo's dialog
	// responses are not safe to write concurrently, and a shutdown's
	// hangupAll (or any command) could otherwise answer at the same time.
	_ = d.Trying()
	return ch
}

func partyOf(h interface {
	Value() string
}) events.Party {
	switch v := h.(type) {
	case *sip.FromHeader:
		if v == nil {
			return events.Party{}
		}
		return events.Party{User: v.Address.User, Display: v.DisplayName, URI: v.Address.String()}
	case *sip.ToHeader:
		if v == nil {
			return events.Party{}
		}
		return events.Party{User: v.Address.User, Display: v.DisplayName, URI: v.Address.String()}
	}
	return events.Party{}
}

// ring sends 180 Ringing on an unanswered inbound leg. Responses of one
// dialog go out one at a time (answerMu): sipgo's are not safe to write
// concurrently, and a 180 relayed for another node's dial can meet the
// answer of a join.
func (ch *channel) ring() error {
	if ch.isRejected() {
		return errors.New("not an unanswered inbound leg")
	}
	ch.answerMu.Lock()
	defer ch.answerMu.Unlock()
	ch.mu.Lock()
	ok := ch.srv != nil && !ch.answered && !ch.rejected && !ch.ended
	ch.mu.Unlock()
	if !ok {
		return errors.New("not an unanswered inbound leg")
	}
	return ch.srv.Ringing()
}

// answer answers an inbound leg and starts its media. Safe to call twice.
func (ch *channel) answer() error {
	if ch.isRejected() {
		// Refused already (the decision came too late): its final response
		// holds answerMu until the caller's ACK, up to Timer H; a caller who
		// never sends it must not hold up the command.
		return errEnded
	}
	ch.answerMu.Lock()
	defer ch.answerMu.Unlock()
	if ch.isAnswered() {
		return nil
	}
	if ch.srv == nil {
		return errNotInbound
	}
	if ch.ctx.Err() != nil {
		return errEnded
	}
	ch.mu.Lock()
	if ch.rejected {
		ch.mu.Unlock()
		return errEnded
	}
	ch.answering = true
	ch.mu.Unlock()
	defer func() {
		ch.mu.Lock()
		ch.answering = false
		ch.mu.Unlock()
	}()
	dm, err := ch.srv.Answer(diago.AnswerOptions{})
	if err != nil {
		return err
	}
	ch.up(dm)
	ch.core.publish(ch.event(events.CallAnswered))
	ch.announced()
	return nil
}

// isRejected reports whether a final response has been given to the
// unanswered inbound leg (or is on its way).
func (ch *channel) isRejected() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.rejected
}

// announced records that call.answered is out: hold and transfer events of
// the leg wait for it, so subscribers always see answered first.
func (ch *channel) announced() {
	ch.answeredOnce.Do(func() { close(ch.answeredCh) })
}

// waitAnnounced waits (bounded) until call.answered of the leg is out.
func (ch *channel) waitAnnounced() {
	select {
	case <-ch.answeredCh:
	case <-ch.ctx.Done():
	case <-time.After(2 * time.Second):
	}
}

// up records that the leg has media and starts its reader.
func (ch *channel) up(dm *diago.DialogMedia) {
	ch.mu.Lock()
	ch.answered = true
	ch.media = dm
	ch.checkedAt = time.Now()
	ch.mu.Unlock()
	ch.out.attach(dm)
	go ch.readLoop(dm)
}
