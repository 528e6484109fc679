package memtrim

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A burst of collections, then quiet: a trim a quiet interval after the
// last collection and at every interval of the tail after it, none while
// collections go on, none again at rest.
func TestTrimsAfterTheLoadStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cycles, trims atomic.Uint64
		tr := &Trimmer{interval: 10 * time.Second, tail: 25 * time.Second, cycles: cycles.Load, trim: func() {
			trims.Add(1)
			cycles.Add(1) // FreeOSMemory collects too
		}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tr.Run(ctx)

		// At rest from the start: nothing to trim.
		time.Sleep(35 * time.Second)
		if n := trims.Load(); n != 0 {
			t.Fatalf("%d trims before any load", n)
		}
		// Load: a collection every 3 s for a minute.
		for range 20 {
			cycles.Add(1)
			time.Sleep(3 * time.Second)
		}
		if n := trims.Load(); n != 0 {
			t.Fatalf("%d trims while the load went on", n)
		}
		// Quiet: trimmed within two intervals, then twice more in the
		// 25 s tail, then left alone.
		time.Sleep(20 * time.Second)
		if n := trims.Load(); n != 1 {
			t.Fatalf("%d trims after the load stopped, want 1", n)
		}
		time.Sleep(30 * time.Second)
		if n := trims.Load(); n != 3 {
			t.Fatalf("%d trims by the tail's end, want 3", n)
		}
		time.Sleep(time.Minute)
		if n := trims.Load(); n != 3 {
			t.Fatalf("%d trims at rest, want still 3", n)
		}
		// The runtime's own periodic collection: a trim after it (and its
		// tail).
		cycles.Add(1)
		time.Sleep(time.Minute)
		if n := trims.Load(); n != 6 {
			t.Fatalf("%d trims after a lone collection, want 6", n)
		}
	})
}

func TestGCCyclesCounts(t *testing.T) {
	before := gcCycles()
	New(0).trim()
	if after := gcCycles(); after <= before {
		t.Fatalf("GC cycles %d -> %d across a FreeOSMemory", before, after)
	}
}
