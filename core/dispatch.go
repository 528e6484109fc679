package core

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/stateless"
	"github.com/callpark/callpark/events"
)

// dispatch is the transaction layer's request handler: every request the
// core receives passes the ingress guard, then goes to its method's
// handler. A new INVITE that became a leg keeps its transaction (the leg
// answers it later, without a goroutine waiting meanwhile); every other
// transaction is left to its timers once handled.
func (c *Core) dispatch(req *sip.Request, tx *sip.ServerTx) {
	keep := false
	c.guard(func(req *sip.Request, stx sip.ServerTransaction) {
		keep = c.route(req, stx)
	})(req, tx)
	if !keep {
		tx.TerminateGracefully()
	}
}

// route hands a valid request to its handler and reports whether its
// transaction was kept.
func (c *Core) route(req *sip.Request, tx sip.ServerTransaction) bool {
	switch req.Method {
	case sip.INVITE:
		if toTag(req) != "" {
			c.reInvite(req, tx)
			return false
		}
		return c.admit(req, tx)
	case sip.ACK:
		c.onAck(req, tx)
	case sip.BYE:
		c.onBye(req, tx)
	case sip.CANCEL:
		// A CANCEL that matched no INVITE transaction (the transaction
		// layer answers the others): RFC 3261 9.2.
		respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	case sip.REFER:
		c.handleRefer(req, tx)
	case sip.INFO:
		c.onInfo(req, tx)
	case sip.NOTIFY:
		// callpark subscribes to nothing: only a REFER's implicit
		// subscription could bring one, and it sends no REFER.
		c.dialogRequest(req, tx, func(*channel) { respond(req, tx, sip.StatusOK, "OK") })
	case sip.OPTIONS:
		c.onOptions(req, tx)
	case sip.UPDATE, sip.PRACK:
		c.handleUnsupportedInDialog(req, tx)
	case sip.REGISTER:
		c.reg.HandleRegister(req, tx)
	case sip.SUBSCRIBE:
		c.handleSubscribe(req, tx)
	default:
		c.noRoute(req, tx)
	}
	return false
}

func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

// dialogRequest runs fn for the leg whose dialog req belongs to, or
// answers 481: plainly for a Call-ID we do not know, counted as a refusal
// for one of ours whose tags or source do not match (a forgery).
func (c *Core) dialogRequest(req *sip.Request, tx sip.ServerTransaction, fn func(*channel)) {
	if toTag(req) == "" {
		// Not even the form of a request inside a dialog.
		c.reject(req, tx, sip.StatusBadRequest, "Missing To Tag", "missing_to_tag")
		return
	}
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil {
		respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if !ch.owns(req) {
		c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
		return
	}
	fn(ch)
}

// onAck takes the ACK of a 2xx we sent; anything else is dropped (an ACK
// is never answered).
func (c *Core) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if stateless.IsACK(req) {
		return // the ACK of a refusal: nothing waits for it
	}
	ch, ok := c.inDialog(req, tx)
	if !ok || ch == nil {
		return
	}
	ch.acked(req)
}

// onBye ends a leg at the far end's request.
func (c *Core) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c.dialogRequest(req, tx, func(ch *channel) {
		respond(req, tx, sip.StatusOK, "OK")
		ch.finish(0, "hangup")
	})
}

// onInfo takes SIP INFO in a dialog: DTMF as application/dtmf-relay
// (reported as call.dtmf), anything else 415.
func (c *Core) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c.dialogRequest(req, tx, func(ch *channel) {
		ct := req.ContentType()
		if ct == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/dtmf-relay") {
			respond(req, tx, sip.StatusUnsupportedMediaType, "Unsupported Media Type",
				sip.NewHeader("Accept", "application/dtmf-relay"))
			return
		}
		respond(req, tx, sip.StatusOK, "OK")
		if d := dtmfRelayDigit(req.Body()); d != "" {
			e := ch.event(events.CallDTMF)
			e.Digit = d
			c.publish(e)
		}
	})
}

// dtmfRelayDigit reads the Signal of an application/dtmf-relay body.
func dtmfRelayDigit(body []byte) string {
	for line := range strings.Lines(string(body)) {
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "signal") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) == 1 && strings.ContainsAny(v, "0123456789*#ABCDabcd") {
			return strings.ToUpper(v)
		}
	}
	return ""
}

// onOptions answers OPTIONS: a keep-alive or capability query, in a
// dialog of ours or outside any.
func (c *Core) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" {
		if _, ok := c.inDialog(req, tx); !ok {
			return
		}
	}
	respond(req, tx, sip.StatusOK, "OK", sip.NewHeader("Allow", allowed+", REGISTER, SUBSCRIBE"),
		sip.NewHeader("Accept", "application/sdp"))
}
