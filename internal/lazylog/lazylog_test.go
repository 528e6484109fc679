package lazylog

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"testing"
)

// The lines are the wrapped handler's, attributes and groups in order.
func TestLinesAreTheWrappedHandlers(t *testing.T) {
	var eager, lazy bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	loggers := []*slog.Logger{
		slog.New(slog.NewTextHandler(&eager, opts)),
		slog.New(New(slog.NewTextHandler(&lazy, opts))),
	}
	for _, l := range loggers {
		c := l.With("component", "control")
		call := c.With("customer", "demo", "call", "n1_a").WithGroup("park").With("key", "333")
		call.Debug("not written", "x", 1)
		call.Info("call parked", "parked", "n1_b")
		c.Warn("plain", slog.Group("g", "a", 1))
		c.WithGroup("").With().Info("empty")
	}
	strip := regexp.MustCompile(`time=\S+ `)
	got, want := strip.ReplaceAllString(lazy.String(), ""), strip.ReplaceAllString(eager.String(), "")
	if got != want {
		t.Fatalf("lazy:\n%s\neager:\n%s", got, want)
	}
}

// counting is a handler that counts WithAttrs calls.
type counting struct {
	slog.Handler
	with *int
}

func (c counting) WithAttrs(a []slog.Attr) slog.Handler {
	*c.with++
	return counting{c.Handler.WithAttrs(a), c.with}
}

// With costs the wrapped handler nothing until an enabled record comes.
func TestWithIsDeferred(t *testing.T) {
	n := 0
	l := slog.New(New(counting{slog.NewTextHandler(&bytes.Buffer{}, nil), &n}))
	call := l.With("call", "n1_a")
	call.Debug("not enabled")
	if n != 0 {
		t.Fatalf("%d WithAttrs before anything was written", n)
	}
	call.Info("written")
	if n != 1 {
		t.Fatalf("%d WithAttrs for one line", n)
	}
	if !call.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("not enabled at Info")
	}
}
