package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

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
	d      *diago.DialogClientSession
	dm     *diago.DialogMedia
	err    error
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
			f.cancel(sipgo.WaitAnswerForceCancelErr)
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
			if cmd.Bridge && origin != nil && origin.srv != nil {
				if err := origin.ring(); err != nil {
					c.log.Debug("180 to the caller failed", "call", origin.id, "err", err)
				}
			}
		})
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
			results <- c.invite(fctx, t, domain, origin, cmd, onRing, f)
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
				_ = r.d.Ack(context.Background())
				_ = c.bye(r.d)
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
	d := win.d
	// The dialog is the leg's from here unless a hangup came first: the
	// caller hung up, or the leg was hung up (CANCEL), while the 200 OK
	// was on its way. A hangup after this waits for the ACK and sends BYE.
	lost := origin != nil && origin.ctx.Err() != nil || b.ctx.Err() != nil
	b.mu.Lock()
	lost = lost || b.hungUp
	if !lost {
		b.cli = d
	}
	b.mu.Unlock()
	if lost {
		_ = d.Ack(context.Background())
		_ = c.bye(d)
		c.dialFailed(b, origin, sip.StatusRequestTerminated, "cancelled")
		return
	}
	b.addRemote(win.target.dest)
	if res := d.InviteResponse; res != nil {
		b.addRemote(res.Source())
		if ct := res.Contact(); ct != nil {
			b.addRemoteURI(ct.Address)
		}
	}
	b.addRemoteURI(win.target.uri)
	b.callID = d.InviteRequest.CallID().Value()
	c.mu.Lock()
	c.byCallID[b.callID] = b
	c.mu.Unlock()
	b.up(win.dm)
	// Publish before the ACK: the phone may send a REFER or a hold as soon
	// as it has the ACK, and those events must come after this one.
	ae := b.event(events.CallAnswered)
	ae.DialedFor = b.dialedFor
	c.publish(ae)
	if err := d.Ack(context.Background()); err != nil {
		c.log.Warn("ack failed", "call", b.id, "err", err)
	}
	// After the ACK: a hangup waiting for the answer sends its BYE on a
	// confirmed dialog.
	b.announced()
	go func() {
		select {
		case <-d.Context().Done(): // a BYE from the phone, or ours answered
		case <-b.ctx.Done(): // finished (its dialog may outlive an unanswered BYE)
		}
		b.finish(0, "hangup")
	}()
	if cmd.Bridge && origin != nil {
		if p := origin.peer.Load(); p != nil && p != b {
			// Someone else got the call first (a manual retrieval won over an
			// automatic return): the late answerer must not get a ghost call.
			b.hangup(0, "")
			return
		}
		if origin.srv != nil {
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

// invite sends one fork of a dial.
func (c *Core) invite(ctx context.Context, t target, domain string, origin *channel, cmd *events.Command, onRing func(), f *fork) forkResult {
	uri := t.uri
	d, err := c.dg.NewDialog(uri, diago.NewDialogOptions{Transport: contactTransport(uri)})
	if err != nil {
		return forkResult{target: t, err: err}
	}
	if t.dest != "" {
		d.InviteRequest.SetDestination(t.dest)
	}
	fromUser := cmd.From.User
	if fromUser == "" {
		fromUser = "callpark"
	}
	opts := diago.InviteClientOptions{
		OnResponse: func(res *sip.Response) error {
			f.responded()
			if ct := res.ContentType(); ct != nil && strings.Contains(strings.ToLower(ct.Value()), "application/sdp") {
				if err := answerReadable(res.Body()); err != nil {
					// diago reads the SDP next; a c= line it would panic on
					// fails the fork instead (a 2xx is then ACKed and BYEd).
					return err
				}
			}
			if res.StatusCode == sip.StatusRinging || res.StatusCode == sip.StatusSessionInProgress {
				onRing()
			}
			return nil
		},
	}
	opts.WithCaller(cmd.From.Display, fromUser, domain)
	if cmd.Trunk != "" {
		if user, pass, ok := c.cfg.Directory.TrunkAuth(cmd.Customer, cmd.Trunk); ok {
			opts.Username, opts.Password = user, pass
		}
		opts.Headers = append(opts.Headers, sip.NewHeader("P-Asserted-Identity",
			"<sip:"+fromUser+"@"+domain+">"))
	}
	if cmd.AlertInfo != "" {
		opts.Headers = append(opts.Headers, sip.NewHeader("Alert-Info", cmd.AlertInfo))
	}
	if t.internal != "" {
		// The signature covers the Call-ID: ours, set before sipgo would.
		callID := sip.CallIDHeader(uuid.NewString())
		d.InviteRequest.AppendHeader(&callID)
		opts.Headers = append(opts.Headers, c.internalHeader(t.internal, cmd.Customer, string(callID), uri.User))
	}
	dm, err := d.Invite(ctx, opts)
	if err != nil {
		if res := d.InviteResponse; res != nil && res.IsSuccess() {
			// A 200 OK crossed our CANCEL: sipgo returns the
			// cancellation and leaves the callee answered. ACK it, then
			// BYE (RFC 3261 15), or the phone holds a ghost call.
			c.log.Info("answer crossed our CANCEL; hanging up", "to", uri.String())
			actx, ac := context.WithTimeout(context.Background(), byeTimeout)
			_ = d.Ack(actx)
			ac()
			_ = c.bye(d)
		}
		_ = d.Close()
		var pe *sipgo.ErrDialogResponse
		return forkResult{target: t, err: err, answered: f.heard.Load() || errors.As(err, &pe)}
	}
	return forkResult{target: t, d: d, dm: dm, answered: true}
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
