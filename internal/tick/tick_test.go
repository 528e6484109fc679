package tick

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestEveryCallsAtEachIntervalUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		var at []time.Duration
		done := make(chan struct{})
		go func() {
			Every(ctx, time.Second, func() {
				at = append(at, time.Since(start))
				if len(at) == 3 {
					cancel()
				}
			})
			close(done)
		}()
		<-done
		if len(at) != 3 || at[0] != time.Second || at[2] != 3*time.Second {
			t.Fatalf("calls at %v, want 1s, 2s, 3s and then none", at)
		}
	})
}

func TestEverySkipsTicksAnOverrunMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second+time.Millisecond)
		defer cancel()
		n := 0
		Every(ctx, time.Second, func() {
			n++
			time.Sleep(2500 * time.Millisecond) // misses two ticks
		})
		// Calls at 1 s, 4 s (3.5 s dropped to the next tick), 7 s, 10 s.
		if n != 4 {
			t.Fatalf("%d calls in 10 s of 2.5 s overruns, want 4", n)
		}
	})
}
