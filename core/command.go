package core

import (
	"context"
	"errors"

	"github.com/callpark/callpark/events"
)

var errNotFound = errors.New("no such call")

// HandleCommand executes one control-plane command. It is the core's whole
// API; events.Bus.ServeCommands feeds it from NATS.
func (c *Core) HandleCommand(ctx context.Context, cmd *events.Command) *events.Reply {
	c.metrics.commands.WithLabelValues(cmd.Op).Inc()
	r := c.handleCommand(ctx, cmd)
	if !r.OK {
		c.metrics.commandErrors.WithLabelValues(cmd.Op, r.Code).Inc()
		c.log.Debug("command failed", "op", cmd.Op, "call", cmd.Call, "code", r.Code, "err", r.Error)
	}
	return r
}

func fail(code string, err error) *events.Reply {
	return &events.Reply{Code: code, Error: err.Error()}
}

func (c *Core) handleCommand(_ context.Context, cmd *events.Command) *events.Reply {
	if cmd.Op == events.OpPresence {
		return c.presenceCommand(cmd)
	}
	if cmd.Op == events.OpDial {
		if o := c.channel(cmd.Call); o != nil && (cmd.Customer == "" || cmd.Customer == o.customer) {
			o.decided()
		}
		b, err := c.dial(cmd)
		if err != nil {
			if errors.Is(err, errNotFound) {
				return fail(events.ErrNotFound, err)
			}
			return fail(events.ErrInvalidRequest, err)
		}
		return &events.Reply{OK: true, Call: b.id}
	}
	ch := c.channel(cmd.Call)
	if ch == nil {
		return fail(events.ErrNotFound, errNotFound)
	}
	if cmd.Customer != "" && cmd.Customer != ch.customer {
		// Tenancy is checked here too: a command may only act on its
		// customer's calls.
		return fail(events.ErrNotFound, errNotFound)
	}
	// One step (steps.go): a bridge's local peer is part of it.
	var peer *channel
	remotePeer := cmd.Op == events.OpBridge && events.NodeOf(cmd.Peer) != "" && events.NodeOf(cmd.Peer) != c.cfg.Node
	if cmd.Op == events.OpBridge && !remotePeer {
		peer = c.channel(cmd.Peer)
	}
	defer lockSteps(ch, peer)()
	ch.decided()
	switch cmd.Op {
	case events.OpRing:
		if err := ch.ring(); err != nil {
			return fail(events.ErrBadState, err)
		}
	case events.OpAnswer:
		if err := ch.answer(); err != nil {
			return fail(events.ErrBadState, err)
		}
	case events.OpReject:
		if !ch.inbound || ch.isAnswered() {
			return fail(events.ErrBadState, errors.New("not an unanswered inbound leg"))
		}
		code := cmd.Code
		if code < 400 || code > 699 {
			return fail(events.ErrInvalidRequest, errors.New("reject code must be 4xx-6xx"))
		}
		ch.hangup(code, cmd.Reason)
	case events.OpHangup:
		if !ch.upOrAnswering() {
			ch.hangup(cmd.Code, cmd.Reason) // a final response or CANCEL: sent in the background
			break
		}
		// The answer to the BYE is the phone's business: the command does
		// not wait for it, or a phone that never answers would hold the
		// control plane up for the transaction's timeout. call.ended
		// follows as usual.
		c.goroutines.Go(func() { ch.hangup(cmd.Code, cmd.Reason) })
	case events.OpPlay:
		if !ch.upOrAnswering() {
			return fail(events.ErrBadState, errors.New("leg is not up"))
		}
		if err := ch.play(cmd.Playback, cmd.Prompts, cmd.HangupAfter); err != nil {
			return fail(events.ErrInvalidRequest, err)
		}
	case events.OpMusic:
		if !ch.upOrAnswering() {
			return fail(events.ErrBadState, errors.New("leg is not up"))
		}
		ch.out.music(cmd.On, cmd.Music)
	case events.OpBridge:
		if remotePeer {
			if !ch.upOrAnswering() && !ch.inbound {
				return fail(events.ErrBadState, errors.New("leg is not up"))
			}
			if err := c.join(ch, cmd.Peer); err != nil {
				return fail(events.ErrUnavailable, err)
			}
			break
		}
		if peer == nil || peer.customer != ch.customer {
			return fail(events.ErrNotFound, errNotFound)
		}
		if !ch.upOrAnswering() || !peer.upOrAnswering() {
			return fail(events.ErrBadState, errors.New("both legs must be up"))
		}
		c.bridge(ch, peer)
	case events.OpUnbridge:
		c.unbridge(ch)
	case events.OpIdentity:
		if !ch.upOrAnswering() {
			return fail(events.ErrBadState, errors.New("leg is not up"))
		}
		c.goroutines.Go(func() { ch.sendIdentity(cmd.From) })
	case events.OpReferNotify:
		if err := ch.referNotify(cmd.ReferID, cmd.Code); err != nil {
			return fail(events.ErrBadState, err)
		}
	default:
		return fail(events.ErrInvalidRequest, errors.New("unknown op "+cmd.Op))
	}
	return &events.Reply{OK: true}
}

// bridge connects a and b, detaching whatever each was bridged with.
func (c *Core) bridge(a, b *channel) {
	for _, pair := range [][2]*channel{{a, b}, {b, a}} {
		x, y := pair[0], pair[1]
		if old := x.peer.Swap(y); old != nil && old != y {
			detach(old, x)
		}
	}
	a.out.bridged()
	b.out.bridged()
}

// unbridge detaches ch from its peer; each falls back to music or silence.
func (c *Core) unbridge(ch *channel) {
	p := ch.peer.Swap(nil)
	if p == nil {
		return
	}
	detach(p, ch)
	ch.out.peerGone(p)
}

// detach tells p that from, its peer, has gone — if from still is its
// peer. p may have been bridged with another leg meanwhile (a retrieval
// while the parker's leg was ending); then it talks with that one, and
// falling back to music or silence would cut it off.
func detach(p, from *channel) {
	if p.peer.CompareAndSwap(from, nil) {
		p.out.peerGone(from)
	}
}

// upOrAnswering reports whether the leg has media: up, or answered with
// the caller's ACK still to come.
func (ch *channel) upOrAnswering() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.answered || ch.answering
}
