package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/callpark/callpark/core/sdp"
	"github.com/callpark/callpark/events"
)

var (
	errNotInbound = errors.New("not an inbound leg")
	errEnded      = errors.New("leg has ended")
)

// target is one place to send an INVITE: the contact URI and the address
// the phone registered from (where NAT lets us reach it).
type target struct {
	uri  sip.Uri
	dest string
	// internal is the kind of an internal leg to another node (cluster.go).
	internal string
}

// dial starts an outbound leg for cmd and returns it at once; the INVITEs
// go out in the background.
func (c *Core) dial(cmd *events.Command) (*channel, error) {
	var targets []target
	to := events.Party{User: cmd.Account, URI: cmd.URI}
	if domain, ok := c.cfg.Directory.Domain(cmd.Customer); !ok || domain == "" {
		return nil, fmt.Errorf("unknown customer %q", cmd.Customer)
	}
	switch {
	case cmd.Account != "":
		secureOnly := c.cfg.Directory.SRTPRequired(cmd.Customer, cmd.Account)
		for _, b := range c.reg.Contacts(cmd.Customer, cmd.Account) {
			if secureOnly && b.Transport != "tls" && contactTransport(b.Contact) != "tls" {
				continue // its calls are SRTP over TLS or nothing (tls.go)
			}
			targets = append(targets, target{uri: b.Contact, dest: b.Source})
		}
	case cmd.URI != "":
		var u sip.Uri
		if err := sip.ParseUri(cmd.URI, &u); err != nil {
			return nil, fmt.Errorf("bad uri: %w", err)
		}
		targets = append(targets, target{uri: u})
		to = events.Party{User: u.User, URI: cmd.URI}
	default:
		return nil, errors.New("dial needs account or uri")
	}
	return c.startDial(cmd, targets, to, false)
}

// startDial starts an outbound leg to targets (an internal one when
// internal: no events) for cmd.
func (c *Core) startDial(cmd *events.Command, targets []target, to events.Party, internal bool) (*channel, error) {
	domain, _ := c.cfg.Directory.Domain(cmd.Customer)
	var origin *channel
	if cmd.Call != "" {
		origin = c.channel(cmd.Call)
		if n := events.NodeOf(cmd.Call); origin == nil && (n == "" || n == c.cfg.Node) {
			return nil, errNotFound
		}
		// Else Call is on another node: the account registered through
		// this one, and the answered leg is joined with Call there.
	}
	b := c.newChannel(c.newID(), events.Outbound)
	b.dialedFor = cmd.Call
	b.dial = cmd.Dial
	if cmd.Call != "" {
		b.linked = cmd.Call
	}
	if origin != nil {
		b.linked = origin.linked
	}
	// A leg dialed for an internal leg is the other node's business too.
	b.internal = internal || origin != nil && origin.internal
	b.customer = cmd.Customer
	b.account = cmd.Account
	b.from = cmd.From
	b.to = to
	b.ctx, b.cancel = context.WithCancel(context.Background())
	c.register(b)
	c.metrics.calls.WithLabelValues("outbound").Inc()
	go c.runDial(b, origin, targets, domain, cmd)
	return b, nil
}

type forkResult struct {
	target target
	// req is the INVITE that got res, a 2xx, when err is nil.
	req *sip.Request
	res *sip.Response
	err error
	// answered is false when nothing at all came back from the contact.
	answered bool
}

// fork is one INVITE of a dial in flight.
type fork struct {
	cancel context.CancelCauseFunc
	// heard is set by the first response of any kind; stopping once the
	// fork has lost.
	heard, stopping atomic.Bool
}

// errAbandon ends a fork that never answered without a CANCEL (there is no
// transaction at the far end to cancel).
var errAbandon = errors.New("fork abandoned: no response")

// silentFor is how long a fork may go without any response before it is
// given up without waiting for Timer B: a live phone answers 100 or 180
// within milliseconds.
const silentFor = 2 * time.Second

// stop ends a fork that lost. One that has responded is CANCELled as RFC
// 3261 9.1 says. One that has said nothing cannot be CANCELled yet: if it
// speaks up before silentFor has passed since the dial began it gets its
// CANCEL then; otherwise it is abandoned, where sipgo would hold it until
// Timer B (32 s).
func (f *fork) stop(started time.Time) {
	f.stopping.Store(true)
	if f.heard.Load() {
		f.cancel(nil)
		return
	}
	time.AfterFunc(max(time.Until(started.Add(silentFor)), 0), func() {
		if f.heard.Load() {
			f.cancel(nil)
		} else {
			f.cancel(errAbandon)
		}
	})
}

// responded records a response; a fork that already lost is CANCELled now.
func (f *fork) responded() {
	f.heard.Store(true)
	if f.stopping.Load() {
		f.cancel(nil)
	}
}

// forkFailed looks into a fork that got no response at all: its contact
// may be gone (keepalive.go).
func (c *Core) forkFailed(cmd *events.Command, r forkResult) {
	if r.answered || r.target.dest == "" || cmd.Account == "" {
		return
	}
	c.probe(cmd.Customer, cmd.Account, r.target.uri, r.target.dest)
}

func (c *Core) runDial(b, origin *channel, targets []target, domain string, cmd *events.Command) {
	e := b.event(events.CallStarted)
	e.DialedFor = b.dialedFor
	c.publish(e)
	if len(targets) == 0 {
		c.dialFailed(b, origin, sip.StatusTemporarilyUnavailable, "not registered")
		return
	}
	timeout := time.Duration(cmd.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if origin != nil {
		// The caller giving up cancels the dial.
		stop := context.AfterFunc(origin.ctx, cancel)
		defer stop()
		origin.mu.Lock()
		origin.dialCancel = cancel
		origin.mu.Unlock()
	}

	var ringOnce sync.Once
	onRing := func() {
		ringOnce.Do(func() {
			re := b.event(events.CallRinging)
			re.DialedFor = b.dialedFor
			c.publish(re)
			if cmd.Bridge && origin != nil && origin.inbound {
				if err := origin.ring(); err != nil {
					c.log.Debug("180 to the caller failed", "call", origin.id, "err", err)
				}
			}
		})
	}
	if err := b.openMedia(); err != nil {
		c.log.Warn("no media for a dial", "call", b.id, "err", err)
		c.dialFailed(b, origin, sip.StatusServiceUnavailable, "no media")
		return
	}
	secure := false
	for _, t := range targets {
		secure = secure || contactTransport(t.uri) == "tls"
	}
	offer, err := b.offer(secure)
	if err != nil {
		c.dialFailed(b, origin, sip.StatusServiceUnavailable, "no media")
		return
	}
	results := make(chan forkResult, len(targets))
	forks := make([]*fork, len(targets))
	started := time.Now()
	for i, t := range targets {
		// Not derived from ctx: when ctx ends (a winner, the dial's
		// timeout, the caller hanging up, this function returning) each
		// fork is stopped as fork.stop says, never just dropped.
		fctx, fcancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f := &fork{cancel: fcancel}
		forks[i] = f
		go func() {
			defer c.recoverGoroutine("dial fork")
			results <- c.invite(fctx, t, domain, cmd, offer, onRing, f)
		}()
	}
	context.AfterFunc(ctx, func() {
		for _, f := range forks {
			f.stop(started)
		}
	})
	// The first 2xx wins at once: nobody waits on a fork that is still
	// ringing, or on a dead contact that will never answer.
	var win *forkResult
	best := 0
	pending := len(targets)
	for pending > 0 && win == nil {
		r := <-results
		pending--
		if r.err == nil {
			win = &r
			break
		}
		c.forkFailed(cmd, r)
		code := failureCode(r.err, ctx)
		if !r.answered && ctx.Err() == nil {
			code = sip.StatusRequestTimeout // nothing came back (Timer B)
		}
		best = betterCode(best, code)
	}
	for _, f := range forks {
		f.stop(started) // CANCEL the others
	}
	if pending > 0 {
		go func() {
			defer c.recoverGoroutine("dial forks")
			for range pending {
				r := <-results
				if r.err != nil {
					c.forkFailed(cmd, r)
					continue
				}
				// Another fork answered too: nobody gets a ghost call.
				c.ackAndBye(r)
			}
		}()
	}
	if win == nil {
		reason := "failed"
		switch best {
		case sip.StatusBusyHere:
			reason = "busy"
		case sip.StatusTemporarilyUnavailable:
			reason = "no answer"
		case sip.StatusRequestTerminated:
			reason = "cancelled"
		}
		c.dialFailed(b, origin, best, reason)
		return
	}
	// The dialog is the leg's from here unless a hangup came first: the
	// caller hung up, or the leg was hung up (CANCEL), while the 200 OK
	// was on its way. A hangup after this waits for the ACK and sends BYE.
	d, ans, err := c.answeredDialog(*win)
	if err != nil {
		c.noisy.Info("unusable answer to a dial; hanging up", "call", b.id, "err", err)
		c.ackAndBye(*win)
		c.dialFailed(b, origin, sip.StatusNotAcceptableHere, "failed")
		return
	}
	lost := origin != nil && origin.ctx.Err() != nil || b.ctx.Err() != nil
	b.mu.Lock()
	lost = lost || b.hungUp
	if !lost {
		b.dlg = d
	}
	b.mu.Unlock()
	if lost {
		c.ackAndBye(*win)
		c.dialFailed(b, origin, sip.StatusRequestTerminated, "cancelled")
		return
	}
	if err := b.takeAnswer(ans); err != nil {
		c.noisy.Info("unusable answer to a dial; hanging up", "call", b.id, "err", err)
		b.mu.Lock()
		b.dlg = nil
		b.mu.Unlock()
		c.ackAndBye(*win)
		c.dialFailed(b, origin, sip.StatusNotAcceptableHere, "failed")
		return
	}
	b.addRemote(win.target.dest)
	b.addRemote(win.res.Source())
	if ct := win.res.Contact(); ct != nil {
		b.addRemoteURI(ct.Address)
	}
	b.addRemoteURI(win.target.uri)
	b.callID = d.callID
	c.mu.Lock()
	c.byCallID[b.callID] = b
	c.mu.Unlock()
	b.up()
	// Publish before the ACK: the phone may send a REFER or a hold as soon
	// as it has the ACK, and those events must come after this one.
	ae := b.event(events.CallAnswered)
	ae.DialedFor = b.dialedFor
	c.publish(ae)
	if err := c.ack(d); err != nil {
		c.log.Warn("ack failed", "call", b.id, "err", err)
	}
	// After the ACK: a hangup waiting for the answer sends its BYE on a
	// confirmed dialog.
	b.announced()
	if cmd.Bridge && origin != nil {
		if p := origin.peer.Load(); p != nil && p != b {
			// Someone else got the call first (a manual retrieval won over an
			// automatic return): the late answerer must not get a ghost call.
			b.hangup(0, "")
			return
		}
		if origin.inbound {
			if err := origin.answer(); err != nil {
				c.log.Warn("answer caller failed", "call", origin.id, "err", err)
				b.hangup(0, "")
				return
			}
		}
		c.bridge(origin, b)
	} else if cmd.Bridge && b.dialedFor != "" {
		// The caller is on another node: join it there.
		if err := c.join(b, b.dialedFor); err != nil {
			c.log.Warn("join with the caller's node failed", "call", b.id, "peer", b.dialedFor, "err", err)
			b.hangup(0, "")
		}
	}
}

func (c *Core) dialFailed(b, origin *channel, code int, reason string) {
	e := b.event(events.CallDialFailed)
	e.DialedFor = b.dialedFor
	e.Code = code
	e.Reason = reason
	c.publish(e)
	b.finish(code, reason)
}

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
	return c.clientFor(d.transport).WriteRequest(ack)
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
