package core

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/events"
)

// handleRefer takes a blind transfer (a phone's Park key) inside a call.
// The core does not dial the target itself: a PBX decides the outcome, so
// the control plane gets call.transfer and answers with refer_notify, which
// sends the final NOTIFY.
func (c *Core) handleRefer(req *sip.Request, tx sip.ServerTransaction) {
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil || !ch.owns(req) {
		c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
		return
	}
	if !ch.upOrAnswering() {
		respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	hdrs := req.GetHeaders("Refer-To")
	if len(hdrs) == 0 {
		hdrs = req.GetHeaders("r")
	}
	if len(hdrs) != 1 {
		respond(req, tx, sip.StatusBadRequest, "Exactly One Refer-To Required")
		return
	}
	var uri sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(hdrs[0].Value(), &uri, &params); err != nil || uri.User == "" {
		respond(req, tx, sip.StatusBadRequest, "Malformed Refer-To")
		return
	}
	if req.Contact() == nil {
		respond(req, tx, sip.StatusBadRequest, "Missing Contact")
		return
	}
	ch.waitAnnounced()
	respond(req, tx, sip.StatusAccepted, "Accepted")
	id := c.newID()
	r := &pendingRefer{req: req, trying: make(chan struct{})}
	ch.mu.Lock()
	if ch.refers == nil {
		ch.refers = map[string]*pendingRefer{}
	}
	ch.refers[id] = r
	ch.mu.Unlock()
	c.goroutines.Go(func() {
		defer close(r.trying)
		_ = ch.sendReferNotify(req, sip.StatusTrying, "Trying", false)
	})
	e := ch.event(events.CallTransfer)
	e.Target = uri.User
	e.ReferID = id
	c.publish(e)
}

// referNotify ends a REFER with its final NOTIFY. The NOTIFY goes out in
// the background: the command does not wait for the phone's answer (a phone
// that never answers would hold the control plane up for the transaction's
// timeout); a BYE the leg gets later waits for it (hangup), so the phone
// still learns the outcome before the call ends.
func (ch *channel) referNotify(id string, code int) error {
	ch.mu.Lock()
	r, ok := ch.refers[id]
	delete(ch.refers, id)
	var done chan struct{}
	if ok {
		done = make(chan struct{})
		ch.notifying = append(pending(ch.notifying), done)
	}
	ch.mu.Unlock()
	if !ok {
		return fmt.Errorf("no pending refer %q", id)
	}
	if code < 200 || code > 699 {
		code = 500
	}
	ch.core.goroutines.Go(func() {
		defer close(done)
		// The final NOTIFY must follow the "100 Trying" one, or the phone
		// sees the subscription end and then a NOTIFY for a dead
		// subscription.
		if !isDone(r.trying) { // mostly answered by now: no timer
			t := time.NewTimer(5 * time.Second)
			select {
			case <-r.trying:
			case <-t.C:
			}
			t.Stop()
		}
		_ = ch.sendReferNotify(r.req, code, reasonPhrase(code), true)
	})
	return nil
}

// isDone reports whether done is closed.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// pending is what of notifying is still on its way (a leg that transfers
// again and again does not pile up finished ones).
func pending(notifying []chan struct{}) []chan struct{} {
	kept := notifying[:0]
	for _, done := range notifying {
		if !isDone(done) {
			kept = append(kept, done)
		}
	}
	return kept
}

// awaitNotifies waits, at most d, for the final NOTIFYs on their way.
func (ch *channel) awaitNotifies(d time.Duration) {
	ch.mu.Lock()
	notifying := ch.notifying
	ch.notifying = nil
	ch.mu.Unlock()
	left := pending(notifying) // mostly none: no timer
	if len(left) == 0 {
		return
	}
	limit := time.NewTimer(d)
	defer limit.Stop()
	for _, done := range left {
		select {
		case <-done:
		case <-limit.C:
			return
		}
	}
}

// pendingRefer is a REFER waiting for its final NOTIFY.
type pendingRefer struct {
	req *sip.Request
	// trying is closed once the "100 Trying" NOTIFY is answered (or failed).
	trying chan struct{}
}

func (ch *channel) sendReferNotify(refer *sip.Request, code int, reason string, final bool) error {
	d := ch.dialogOf()
	if d == nil {
		return errNoDialog
	}
	// Inside the REFER's dialog (its implicit subscription, RFC 3515), to
	// where the REFER came from.
	n := d.request(sip.NOTIFY)
	n.Recipient = *refer.Contact().Address.Clone()
	n.AppendHeader(sip.NewHeader("Event", "refer"))
	if final {
		n.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason=noresource"))
	} else {
		n.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=60"))
	}
	n.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	n.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason)))
	if len(d.routes) == 0 {
		n.SetDestination(refer.Source())
	}
	ctx, cancel := context.WithTimeout(ch.ctx, 10*time.Second)
	defer cancel()
	_, err := ch.core.do(ctx, d, n)
	if err != nil {
		ch.core.log.Debug("refer notify failed", "call", ch.id, "err", err)
	}
	return err
}
