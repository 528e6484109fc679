// Package throttle provides a slog.Handler for logs an outsider can cause:
// every string value is cut to a few hundred bytes and each message is let
// through at most a few times per interval, with a count of what was held
// back. A scanner sending thousands of malformed packets a second then costs
// a handful of short log lines, not a raw dump per packet.
package throttle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options tune a Handler; zero values take the defaults noted.
type Options struct {
	// Burst is how many records of one message pass per Interval (default 5).
	Burst int
	// Interval is the window of Burst (default 10s).
	Interval time.Duration
	// MaxValue is the longest string value logged, in bytes (default 300).
	MaxValue int
	// Now is time.Now; replaced in tests.
	Now func() time.Time
}

// Handler wraps another handler; see the package comment.
type Handler struct {
	next  slog.Handler
	opts  Options
	state *state
}

type state struct {
	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

// maxMessages bounds the distinct messages tracked; beyond it the oldest
// windows are simply forgotten.
const maxMessages = 1024

// New wraps next.
func New(next slog.Handler, opts Options) *Handler {
	if opts.Burst <= 0 {
		opts.Burst = 5
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.MaxValue <= 0 {
		opts.MaxValue = 300
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{next: next, opts: opts, state: &state{windows: map[string]*window{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	suppressed, ok := h.admit(r.Message)
	if !ok {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.cut(a))
		return true
	})
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, out)
}

// admit says whether a record of msg may pass now and how many were held
// back since the last one that did.
func (h *Handler) admit(msg string) (int, bool) {
	now := h.opts.Now()
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[msg]
	if w == nil {
		if len(s.windows) >= maxMessages {
			for k := range s.windows {
				delete(s.windows, k)
				break
			}
		}
		w = &window{start: now}
		s.windows[msg] = w
	}
	if now.Sub(w.start) >= h.opts.Interval {
		w.start, w.passed = now, 0
	}
	if w.passed >= h.opts.Burst {
		w.suppressed++
		return 0, false
	}
	w.passed++
	n := w.suppressed
	w.suppressed = 0
	return n, true
}

func (h *Handler) cut(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > h.opts.MaxValue {
			return slog.String(a.Key, s[:h.opts.MaxValue]+"…")
		}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			if s := err.Error(); len(s) > h.opts.MaxValue {
				return slog.String(a.Key, s[:h.opts.MaxValue]+"…")
			}
		}
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.cut(g)
		}
		return slog.Group(a.Key, out...)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	cut := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		cut[i] = h.cut(a)
	}
	return &Handler{next: h.next.WithAttrs(cut), opts: h.opts, state: h.state}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), opts: h.opts, state: h.state}
}
