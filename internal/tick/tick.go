// Package tick runs periodic work: the one loop behind every sweep,
// announcement, lease renewal and probe round in callpark.
package tick

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx ends, and returns then. The
// first call is one interval after the start; a call that overruns skips
// the ticks it missed rather than running late ones back to back.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				return
			}
			fn()
		}
	}
}
