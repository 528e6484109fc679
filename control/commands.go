package control

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

// Prompt names, as in sounds/prompts.
const (
	PromptParked        = "parked"
	PromptNotPermitted  = "not-permitted"
	PromptInvalidNumber = "invalid-number"
	PromptNoHeldCall    = "no-held-call"
	PromptNumberBusy    = "number-busy"
	PromptNotParked     = "not-parked"
)

// do sends cmd to the core for customer, counting and logging failures.
// The reply is never nil.
func (c *Control) do(ctx context.Context, customer string, cmd *events.Command) (*events.Reply, error) {
	cmd.Customer = customer
	if cmd.Op == events.OpDial && cmd.Account != "" && cmd.Node == "" {
		// To the node the phone registered through (cluster.go).
		cmd.Node = c.via(customer, cmd.Account, cmd.Call)
	}
	start := time.Now()
	r, err := c.bus.Do(ctx, cmd)
	c.metrics.commandTime.WithLabelValues(cmd.Op).Observe(time.Since(start).Seconds())
	if r == nil {
		r = &events.Reply{OK: err == nil}
	}
	if err != nil {
		c.metrics.commandErrors.WithLabelValues(cmd.Op).Inc()
		// A leg gone meanwhile (its caller hung up while we decided) is
		// the ordinary race of a busy system, not a fault: Info, not Warn.
		level := slog.LevelWarn
		if notFound(err) {
			level = slog.LevelInfo
		}
		c.log.Log(ctx, level, "core command failed", "op", cmd.Op, "customer", customer, "call", cmd.Call, "peer", cmd.Peer, "err", err)
	}
	return r, err
}

// tellIdentity tells the phone on leg who it talks to now (OpIdentity);
// a leg of no account (a carrier's) is told nothing.
func (c *Control) tellIdentity(ctx context.Context, customer, leg string, who events.Party) {
	if ch := c.store.Channel(leg); ch == nil || ch.Account == "" {
		return
	}
	c.do(ctx, customer, &events.Command{Op: events.OpIdentity, Call: leg, From: who})
}

// notFound reports whether err is the core saying the leg is gone.
func notFound(err error) bool {
	var re *events.ReplyError
	return errors.As(err, &re) && re.Code == events.ErrNotFound
}

// announce answers leg call, plays prompts and hangs up after them: how a
// user hears an error (or a confirmation) instead of silence.
func (c *Control) announce(ctx context.Context, customer, call string, prompts ...string) {
	if _, err := c.do(ctx, customer, &events.Command{Op: events.OpAnswer, Call: call}); err != nil {
		c.do(ctx, customer, &events.Command{Op: events.OpHangup, Call: call, Code: 480})
		return
	}
	if _, err := c.do(ctx, customer, &events.Command{Op: events.OpPlay, Call: call, Prompts: prompts, HangupAfter: true}); err != nil {
		c.do(ctx, customer, &events.Command{Op: events.OpHangup, Call: call})
	}
}

// reject refuses an unanswered inbound leg with a SIP status.
func (c *Control) reject(ctx context.Context, customer, call string, code int) {
	c.do(ctx, customer, &events.Command{Op: events.OpReject, Call: call, Code: code})
}

// hangup ends a leg.
func (c *Control) hangup(ctx context.Context, customer, call string) {
	c.do(ctx, customer, &events.Command{Op: events.OpHangup, Call: call})
}

// publish sends a control-plane event about leg call.
func (c *Control) publish(typ, customer, call string, park *events.Park) {
	c.bus.Publish(c.appEvent(typ, customer, call, park))
}

// appEvent is an application event of type typ about leg call of
// customer, stamped now; the caller fills in the rest and publishes it.
func (c *Control) appEvent(typ, customer, call string, park *events.Park) *events.Event {
	return &events.Event{V: events.Version, Type: typ, Time: c.now().UTC(), Customer: customer, Call: call, Park: park}
}

// publishSlot publishes slot.busy or slot.free for the slot park p is on.
func (c *Control) publishSlot(typ string, p *state.Parked) {
	e := c.appEvent(typ, p.Customer, p.Channel, p.Event())
	e.Slot = p.Number
	c.bus.Publish(e)
}

// spell turns a dial code into prompts, one per character: "*71333" is
// star, digit-7, digit-1, digit-3, digit-3, digit-3.
func spell(code string) []string {
	out := make([]string, 0, len(code))
	for _, r := range code {
		switch {
		case r == '*':
			out = append(out, "star")
		case r == '#':
			out = append(out, "pound")
		case r >= '0' && r <= '9':
			out = append(out, "digit-"+string(r))
		}
	}
	return out
}
