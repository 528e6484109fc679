package core

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/callpark/callpark/core/sdp"
	"github.com/callpark/callpark/core/stateless"
	"github.com/callpark/callpark/events"
)

// admit checks a new INVITE, decides who sent it and makes it a leg. It
// reports whether the leg keeps the transaction (to answer it later).
func (c *Core) admit(req *sip.Request, tx sip.ServerTransaction) bool {
	if ch := c.channelByCallID(req.CallID().Value()); ch != nil {
		// The INVITE of a leg we have: a retransmission that came after
		// its transaction was done (the ACK is in), or a second INVITE
		// with the Call-ID of a call in progress. Neither starts a call.
		if fromTag(req) == ch.remoteTagOf() {
			return false
		}
		c.reject(req, tx, sip.StatusLoopDetected, "Loop Detected", "call_id_in_use")
		return false
	}
	if c.draining.Load() {
		refuseStateless(req, tx, "30")
		return false
	}
	if why := c.overloaded(req); why != "" {
		c.refuseOverload(req, tx, why)
		return false
	}
	offer, code, reason := checkOffer(req)
	if code != 0 {
		c.metrics.badRequests.WithLabelValues(reason).Inc()
		_ = stateless.Respond(req, tx, sip.NewResponseFromRequest(req, code, reason, nil))
		return false
	}
	if req.Contact() == nil {
		c.reject(req, tx, sip.StatusBadRequest, "Missing Contact", "missing_contact")
		return false
	}
	id, internal, err := c.internalIdentity(req)
	if err != nil {
		c.reject(req, tx, sip.StatusForbidden, "Forbidden", "bad_internal")
		return false
	}
	if src, err := netip.ParseAddrPort(req.Source()); err == nil && !internal {
		if cust, trunk, ok := c.cfg.Directory.Trunk(src, req.Recipient.User); ok {
			id = identity{customer: cust, trunk: trunk}
		}
	}
	if id.customer == "" && !internal {
		who, ok := c.reg.Authenticate(req, tx)
		if !ok {
			return false
		}
		id = identity{customer: who.Customer, account: who.Account}
	}
	if internal || id.trunk != "" {
		c.strangers.trust(req) // a trunk's or a node's connection: proven
	}
	if !internal {
		if code, reason := c.checkSRTP(req, offer, id.customer, id.account); code != 0 {
			c.reject(req, tx, code, reason, "srtp")
			return false
		}
	}
	return c.accept(req, tx, id, offer)
}

// checkOffer reads and checks the SDP offer of a new INVITE: the core
// anchors media and needs an offer with G.711. It returns the offer, or
// the status and reason to refuse the INVITE with.
func checkOffer(req *sip.Request) (*sdp.Session, int, string) {
	body := req.Body()
	if len(body) == 0 {
		return nil, sip.StatusNotAcceptableHere, "SDP Offer Required"
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
		return nil, sip.StatusUnsupportedMediaType, "Unsupported Media Type"
	}
	s, err := sdp.Parse(body)
	switch {
	case errors.Is(err, sdp.ErrConnection):
		return nil, sip.StatusBadRequest, "Malformed SDP Connection"
	case err != nil:
		return nil, sip.StatusBadRequest, "Malformed SDP"
	}
	m := s.AudioMedia()
	if m == nil {
		return nil, sip.StatusNotAcceptableHere, "No Audio Stream"
	}
	if _, ok := m.Negotiate(); !ok {
		return nil, sip.StatusNotAcceptableHere, "No Common Codec"
	}
	return s, 0, ""
}

// offerHolds tells whether an SDP offer puts the call on hold.
func offerHolds(body []byte) (hold bool, ok bool) {
	s, err := sdp.Parse(body)
	if err != nil || s.AudioMedia() == nil {
		return false, false
	}
	return s.AudioMedia().Hold(), true
}

// fromTag is the tag of a message's From header.
func fromTag(m sip.Message) string {
	if f := m.From(); f != nil {
		t, _ := f.Params.Get("tag")
		return t
	}
	return ""
}

// toTag is the tag of a message's To header.
func toTag(m sip.Message) string {
	if t := m.To(); t != nil {
		tag, _ := t.Params.Get("tag")
		return tag
	}
	return ""
}

// remoteTagOf is the far end's tag of the leg's dialog.
func (ch *channel) remoteTagOf() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dlg == nil {
		return ""
	}
	return ch.dlg.remoteTag
}

// accept makes an admitted INVITE a leg: 100 Trying, call.started, and a
// deadline for the control plane's decision (or, for an internal leg,
// the join at once). The leg keeps the transaction until it answers.
func (c *Core) accept(req *sip.Request, tx sip.ServerTransaction, id identity, offer *sdp.Session) bool {
	ch := c.newChannel(c.newID(), events.Inbound)
	ch.customer, ch.account, ch.trunk = id.customer, id.account, id.trunk
	ch.internal = id.internal != ""
	ch.callID = req.CallID().Value()
	ch.dialed = req.Recipient.User
	ch.from = partyOf(req.From())
	ch.to = partyOf(req.To())
	ch.addRemote(req.Source())
	ch.addRemoteURI(req.Contact().Address)
	ch.ctx, ch.cancel = context.WithCancel(context.Background())
	ch.inv, ch.invTx, ch.invOffer = req, tx, offer
	ch.dlg = inboundDialog(req)
	// 100 Trying goes out before the leg is findable: the INVITE's
	// responses are written one at a time (answerMu), and a shutdown's
	// hangupAll (or any command) could otherwise answer at the same time.
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusTrying, "Trying", nil))
	if !tx.OnCancel(func(*sip.Request) {
		// Under the transaction's lock, which has answered 487: finish
		// elsewhere.
		go ch.finish(sip.StatusRequestTerminated, "cancelled")
	}) {
		return false // cancelled already
	}
	tx.OnTerminate(func(string, error) {
		// A transaction over before the answer (its timers ran out, a
		// transport error): the call is gone.
		if !ch.isAnswered() {
			go ch.finish(sip.StatusRequestTerminated, "cancelled")
		}
	})
	if ch.internal {
		c.register(ch)
		c.metrics.calls.WithLabelValues("internal").Inc()
		c.joinHere(ch, req.Recipient.User)
		return true
	}
	c.mu.Lock()
	c.undecided++
	c.undecidedQ = append(c.undecidedQ, ch)
	c.mu.Unlock()
	c.register(ch)
	c.metrics.calls.WithLabelValues("inbound").Inc()
	c.publish(ch.event(events.CallStarted))
	// The control plane must act on the call soon, or the caller is told
	// to try again instead of hearing nothing but 100 Trying.
	c.decisions.Schedule(ch.id, time.Now().Add(c.cfg.Admission.DecisionTimeout))
	return true
}

// inboundDialog is the dialog an INVITE asks for, with our fresh tag.
func inboundDialog(req *sip.Request) *dialog {
	from, to := req.From(), req.To()
	d := &dialog{
		callID:     req.CallID().Value(),
		localTag:   uuid.NewString(),
		remoteTag:  fromTag(req),
		local:      *to.Address.Clone(),
		localName:  to.DisplayName,
		remote:     *from.Address.Clone(),
		remoteName: from.DisplayName,
		target:     *req.Contact().Address.Clone(),
		routes:     routeSet(req, false),
		transport:  req.Transport(),
		dest:       req.Source(),
		inviteSeq:  req.CSeq().SeqNo,
	}
	if h := req.GetHeader("Allow"); h != nil {
		d.allow = h.Value()
	}
	d.localSeq.Store(uint32(uuid.New().ID() & 0x7fffffff))
	return d
}

// decisionTimeout fires for an inbound leg the control plane has not acted
// on in time: the caller gets 503.
func (c *Core) decisionTimeout(id string) {
	ch := c.channel(id)
	if ch == nil || ch.decision.done.Load() {
		return
	}
	c.metrics.overload.WithLabelValues("no_decision").Inc()
	c.noisy.Warn("no decision from the control plane: new call refused", "call", ch.id)
	ch.decided()
	go ch.hangup(sip.StatusServiceUnavailable, "Service Unavailable")
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

// response builds a response to the leg's INVITE, with our To tag (none
// on 100) and Contact.
func (ch *channel) response(code int, reason string, body []byte) *sip.Response {
	ch.mu.Lock()
	inv, d := ch.inv, ch.dlg
	ch.mu.Unlock()
	if inv == nil {
		return nil
	}
	res := sip.NewResponseFromRequest(inv, code, reason, body)
	if to := res.To(); to != nil && code != sip.StatusTrying {
		to.Params.Add("tag", d.localTag)
	}
	if code > 100 && code < 300 {
		res.AppendHeader(ch.core.contact(d.transport))
		res.AppendHeader(sip.NewHeader("Allow", allowed))
	}
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	return res
}

// allowed is what the core answers in a dialog.
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO, UPDATE"

// ring sends 180 Ringing on an unanswered inbound leg. Responses of one
// dialog go out one at a time (answerMu): a 180 relayed for another
// node's dial can meet the answer of a join.
func (ch *channel) ring() error {
	if ch.isRejected() {
		return errors.New("not an unanswered inbound leg")
	}
	ch.answerMu.Lock()
	defer ch.answerMu.Unlock()
	ch.mu.Lock()
	ok := ch.inbound && !ch.answered && !ch.rejected && !ch.ended && ch.invTx != nil
	tx := ch.invTx
	ch.mu.Unlock()
	if !ok {
		return errors.New("not an unanswered inbound leg")
	}
	res := ch.response(sip.StatusRinging, "Ringing", nil)
	if res == nil {
		return errEnded
	}
	return tx.Respond(res)
}

// reject sends a final response to an unanswered inbound leg and returns
// its transaction (nil when none), which resends it until the caller's ACK.
func (ch *channel) reject(code int, reason string) sip.ServerTransaction {
	ch.answerMu.Lock()
	defer ch.answerMu.Unlock()
	ch.mu.Lock()
	tx := ch.invTx
	answered := ch.answered
	ch.mu.Unlock()
	if tx == nil || answered {
		return nil
	}
	res := ch.response(code, reason, nil)
	if res == nil {
		return nil
	}
	if err := tx.Respond(res); err != nil {
		ch.core.log.Debug("reject failed", "call", ch.id, "err", err)
		return nil
	}
	return tx
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
	if isDone(ch.answeredCh) {
		return // mostly: no timer
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-ch.answeredCh:
	case <-ch.ctx.Done():
	case <-t.C:
	}
}

// up records that the leg has media.
func (ch *channel) up() {
	ch.mu.Lock()
	ch.upLocked()
	ch.mu.Unlock()
}

func (ch *channel) upLocked() {
	ch.answered = true
	ch.checkedAt = time.Now()
}
