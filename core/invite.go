package core

// One fork of a dial on the wire: its INVITE, CANCEL and ACK, and the
// dialog its 2xx sets up (outbound.go runs the dial over its forks).

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/callpark/callpark/core/sdp"
	"github.com/callpark/callpark/events"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// invite sends one fork of a dial: an INVITE to t with our offer, and
// waits for its final response. A fork stopped while it rings is CANCELled
// (its 487 awaited); one stopped before any response (errAbandon) is
// dropped. A 2xx that crosses our CANCEL is ACKed and ended with BYE
// (RFC 3261 15): the callee must not keep a ghost call.
func (c *Core) invite(ctx context.Context, t target, domain string, cmd *events.Command, offer []byte, onRing func(), f *fork) forkResult {
	transport := contactTransport(t.uri)
	if transport == "" {
		transport = "udp"
	}
	req, err := c.newInvite(t, transport, domain, cmd, offer)
	if err != nil {
		return forkResult{target: t, err: err}
	}
	client := c.clientFor(transport)
	tx, err := client.TransactionRequest(ctx, req)
	if err != nil {
		return forkResult{target: t, err: err}
	}
	defer func() { tx.Terminate() }()
	var user, pass string
	if cmd.Trunk != "" {
		user, pass, _ = c.cfg.Directory.TrunkAuth(cmd.Customer, cmd.Trunk)
	}
	authed, cancelled := false, false
	done := ctx.Done()
	var giveUp <-chan time.Time
	fail := func(err error) forkResult {
		var pe *sipgo.ErrDialogResponse
		return forkResult{target: t, err: err, answered: f.heard.Load() || errors.As(err, &pe)}
	}
	for {
		select {
		case res := <-tx.Responses():
			f.responded()
			switch {
			case res.IsProvisional():
				if res.StatusCode == sip.StatusRinging || res.StatusCode == sip.StatusSessionInProgress {
					onRing()
				}
			case res.IsSuccess():
				r := forkResult{target: t, req: req, res: res, answered: true}
				if cancelled {
					c.log.Info("answer crossed our CANCEL; hanging up", "to", t.uri.String())
					c.ackAndBye(r)
					return fail(context.Canceled)
				}
				return r
			case (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) &&
				!authed && user != "" && !cancelled:
				// A carrier's challenge: once, with the trunk's credentials.
				authed = true
				tx.Terminate()
				tx, err = client.TransactionDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: pass})
				if err != nil {
					return fail(err)
				}
			case cancelled:
				// The 487 of our CANCEL: the fork ended because it lost or
				// the dial gave up (the dial's context says which).
				return fail(context.Canceled)
			default:
				return fail(&sipgo.ErrDialogResponse{Res: res})
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return fail(err)
			}
			return fail(errors.New("invite transaction ended"))
		case <-done:
			done = nil
			if errors.Is(context.Cause(ctx), errAbandon) || !f.heard.Load() {
				return fail(ctx.Err())
			}
			cancelled = true
			go c.sendCancel(req)
			// The 487 follows; a callee that never sends it is let go.
			giveUp = time.After(sip.Timer_B)
		case <-giveUp:
			return fail(context.Canceled)
		}
	}
}

// newInvite builds the INVITE of a fork.
func (c *Core) newInvite(t target, transport, domain string, cmd *events.Command, offer []byte) (*sip.Request, error) {
	uri := *t.uri.Clone()
	if uri.UriParams != nil {
		uri.UriParams = uri.UriParams.Clone()
		uri.UriParams.Remove("transport")
	}
	req := sip.NewRequest(sip.INVITE, uri)
	req.SetTransport(strings.ToUpper(transport))
	if t.dest != "" {
		req.SetDestination(t.dest)
	}
	fromUser := cmd.From.User
	if fromUser == "" {
		fromUser = "callpark"
	}
	from := &sip.FromHeader{DisplayName: headerSafe.Replace(cmd.From.Display),
		Address: sip.Uri{Scheme: "sip", User: fromUser, Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host}, Params: sip.NewParams()}
	if to.Address.Scheme == "" {
		to.Address.Scheme = "sip"
	}
	callID := sip.CallIDHeader(uuid.NewString())
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(&maxFwd)
	req.AppendHeader(c.contact(transport))
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	if cmd.Trunk != "" {
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:"+fromUser+"@"+domain+">"))
	}
	if cmd.AlertInfo != "" {
		req.AppendHeader(sip.NewHeader("Alert-Info", cmd.AlertInfo))
	}
	if t.internal != "" {
		// The signature covers the Call-ID and the Request-URI user.
		req.AppendHeader(c.internalHeader(t.internal, cmd.Customer, string(callID), uri.User))
	}
	req.SetBody(offer)
	return req, nil
}

// cancelRequest is the CANCEL of an INVITE (RFC 3261 9.1): its
// Request-URI, Call-ID, From, To, top Via and routes, CSeq number.
func cancelRequest(inv *sip.Request) *sip.Request {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, name := range []string{"Route"} {
		for _, h := range inv.GetHeaders(name) {
			req.AppendHeader(sip.HeaderClone(h))
		}
	}
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	req.SetBody(nil)
	return req
}

// sendCancel CANCELs an INVITE in progress.
func (c *Core) sendCancel(inv *sip.Request) {
	defer c.recoverGoroutine("cancel")
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	cr := cancelRequest(inv)
	cr.Laddr = inv.Laddr
	tx, err := c.clientFor(inv.Transport()).TransactionRequest(ctx, cr)
	if err != nil {
		c.log.Debug("cancel failed", "err", err)
		return
	}
	defer tx.Terminate()
	select {
	case <-tx.Responses():
	case <-tx.Done():
	case <-ctx.Done():
	}
}

// answeredDialog is the dialog a fork's 2xx set up, and the SDP answer it
// carries.
func (c *Core) answeredDialog(r forkResult) (*dialog, *sdp.Session, error) {
	inv, res := r.req, r.res
	to := res.To()
	if to == nil || toTag(res) == "" {
		return nil, nil, errors.New("2xx without a To tag")
	}
	target := inv.Recipient
	if ct := res.Contact(); ct != nil {
		target = ct.Address
	}
	d := &dialog{
		callID:     inv.CallID().Value(),
		localTag:   fromTag(inv),
		remoteTag:  toTag(res),
		local:      *inv.From().Address.Clone(),
		localName:  inv.From().DisplayName,
		remote:     *to.Address.Clone(),
		remoteName: to.DisplayName,
		target:     *target.Clone(),
		routes:     routeSet(res, true),
		transport:  inv.Transport(),
		dest:       r.target.dest,
		inviteSeq:  inv.CSeq().SeqNo,
	}
	if d.dest == "" {
		d.dest = res.Source()
	}
	if h := res.GetHeader("Allow"); h != nil {
		d.allow = h.Value()
	}
	d.localSeq.Store(d.inviteSeq)
	if ct := res.ContentType(); ct == nil || !strings.Contains(strings.ToLower(ct.Value()), "application/sdp") {
		return d, nil, errors.New("2xx without SDP")
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		return d, nil, err
	}
	return d, ans, nil
}

// ack sends the ACK of a 2xx on d.
func (c *Core) ack(d *dialog) error {
	ack := d.request(sip.ACK)
	ack.AppendHeader(c.contact(d.transport))
	// A copy of the 2xx (our ACK was lost, or late) gets the ACK sent
	// first (RFC 3261 13.2.2.4), its branch included: a new branch makes
	// a new request of it, which a strict UA refuses mid-call.
	d.ackMu.Lock()
	defer d.ackMu.Unlock()
	if d.ackVia != nil {
		ack.PrependHeader(d.ackVia.Clone())
	}
	err := c.clientFor(d.transport).WriteRequest(ack)
	if via := ack.Via(); via != nil && err == nil && d.ackVia == nil {
		d.ackVia = via.Clone() // as sent: the transport may have rewritten it
	}
	return err
}

// ackAndBye ends a dialog a 2xx set up that nobody wants (a second fork's
// answer, an answer that crossed our CANCEL or came for a call gone).
func (c *Core) ackAndBye(r forkResult) {
	d, _, err := c.answeredDialog(r)
	if d == nil {
		c.log.Debug("cannot end an unwanted answer", "err", err)
		return
	}
	_ = c.ack(d)
	if err := c.byeDialog(d); err != nil {
		c.log.Debug("bye of an unwanted answer failed", "err", err)
	}
}

// strayResponse takes a response no client transaction wants: a 2xx to
// one of our INVITEs resent because our ACK was lost is ACKed again.
func (c *Core) strayResponse(res *sip.Response) {
	cseq := res.CSeq()
	if !res.IsSuccess() || cseq == nil || cseq.MethodName != sip.INVITE || res.CallID() == nil {
		return
	}
	ch := c.channelByCallID(res.CallID().Value())
	if ch == nil || ch.inbound {
		return
	}
	d := ch.dialogOf()
	if d == nil || d.remoteTag != toTag(res) || d.localTag != fromTag(res) || d.inviteSeq != cseq.SeqNo {
		return
	}
	_ = c.ack(d)
}

// failureCode maps a fork's error to a SIP status for call.dial_failed.
func failureCode(err error, ctx context.Context) int {
	var pe *sipgo.ErrDialogResponse
	if errors.As(err, &pe) && pe.Res != nil {
		return pe.Res.StatusCode
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return sip.StatusTemporarilyUnavailable
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return sip.StatusRequestTerminated
	}
	return sip.StatusTemporarilyUnavailable
}

// betterCode keeps the most telling failure among forks: busy beats the rest.
func betterCode(a, b int) int {
	rank := func(c int) int {
		switch c {
		case sip.StatusBusyHere, 600:
			return 3
		case sip.StatusRequestTerminated:
			return 2
		case 0:
			return 0
		}
		return 1
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func reasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Error"
}
