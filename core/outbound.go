package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

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
	c.goroutines.Go(func() { c.runDial(b, origin, targets, domain, cmd) })
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
		c.goroutines.Go(func() {
			defer c.recoverGoroutine("dial fork")
			results <- c.invite(fctx, t, domain, cmd, offer, onRing, f)
		})
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
	// From taking the answer to the bridge is one step (steps.go): the
	// callee may act as soon as it has the ACK, the caller as soon as it
	// has its 200 OK, and what the control plane does about it must come
	// after the bridge. A hangup of the callee waits for the step (and
	// then ends an answered leg) or comes before it (and the answer is
	// not taken); never in between, where it would wait for the answer's
	// announcement that the step has still to make.
	unlock := func() {}
	if cmd.Bridge && origin != nil {
		unlock = lockSteps(origin, b)
	}
	lost := origin != nil && origin.ctx.Err() != nil || b.ctx.Err() != nil
	b.mu.Lock()
	lost = lost || b.hungUp
	if !lost {
		b.dlg = d
	}
	b.mu.Unlock()
	if lost {
		unlock()
		c.ackAndBye(*win)
		c.dialFailed(b, origin, sip.StatusRequestTerminated, "cancelled")
		return
	}
	if err := b.takeAnswer(ans); err != nil {
		c.noisy.Info("unusable answer to a dial; hanging up", "call", b.id, "err", err)
		b.mu.Lock()
		b.dlg = nil
		b.mu.Unlock()
		unlock()
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
	defer unlock()
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
		if k := c.cfg.Testing; k != nil && k.BeforeDialBridge != nil {
			k.BeforeDialBridge()
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
