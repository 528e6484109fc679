// Package lazylog provides a slog.Handler whose With and WithGroup cost
// nothing until a record is logged.
//
// slog's text and JSON handlers format a logger's attributes when the
// logger is made (Logger.With), so that each line it logs need not. That
// is the right trade for a component's logger, made once; it is the wrong
// one for the logger a call's handling makes for itself (customer, call,
// account, route) and then mostly uses for Debug lines that are not
// written: 1.3 % of callparkd's CPU at 1,000 park+retrieve cycles/s went
// to formatting attributes no line carried. A Handler keeps With's
// attributes and groups as they are and hands them to the handler it
// wraps only for a record that is enabled.
package lazylog

import (
	"context"
	"log/slog"
)

// Handler wraps another handler; see the package comment.
type Handler struct {
	next slog.Handler
	// ops are the With and WithGroup calls since next, oldest first.
	ops []op
}

// op is one WithAttrs (attrs) or WithGroup (group) call.
type op struct {
	group string
	attrs []slog.Attr
}

// New wraps next.
func New(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler: the attributes and groups are applied
// to the wrapped handler now.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	next := h.next
	for _, o := range h.ops {
		if o.attrs != nil {
			next = next.WithAttrs(o.attrs)
		} else {
			next = next.WithGroup(o.group)
		}
	}
	return next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(op{attrs: attrs})
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(op{group: name})
}

func (h *Handler) with(o op) *Handler {
	ops := make([]op, len(h.ops)+1)
	copy(ops, h.ops)
	ops[len(h.ops)] = o
	return &Handler{next: h.next, ops: ops}
}
