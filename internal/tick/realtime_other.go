//go:build !linux

package tick

import (
	"context"
	"errors"
	"time"
)

// Realtime is Linux's alone; here it refuses.
func Realtime(prio int) error { return errors.New("tick: no real-time threads on this system") }

// RealtimePermitted is Linux's alone; here it refuses.
func RealtimePermitted(prio int) error { return Realtime(prio) }

// NewThreadMetronome is NewMetronome here.
func NewThreadMetronome(ctx context.Context, first, period time.Duration) *Metronome {
	return NewMetronome(ctx, first, period)
}
