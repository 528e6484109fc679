// Package memtrim gives a process's memory back to the operating system
// once a burst of load is over.
//
// Go collects garbage when the heap grows, so a service that goes quiet
// after a peak stops collecting: the peak's garbage stays counted as in
// use until the runtime's forced collection (every two minutes), and the
// scavenger then returns it gradually. A PBX after a busy hour would sit
// at its peak resident size for minutes. A Trimmer watches the collector:
// when a whole interval passes with no collection after one that had some
// (the load has stopped allocating), it runs one collection and returns
// the free memory at once (debug.FreeOSMemory). The peak's state does not
// all die at that moment: protocol timers hold some of it a while longer
// (a SIP transaction lingers 32 s after its last message), so it trims
// again at every quiet interval for a tail (DefaultTail) after the first.
// While the load goes on, collections keep happening and it does nothing;
// at rest it trims only after a collection the runtime makes on its own.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/callpark/callpark/internal/tick"
)

// DefaultInterval is the quiet time after which memory is trimmed.
const DefaultInterval = 15 * time.Second

// DefaultTail is how long after the first trim of a quiet spell it trims
// again at every interval: past the longest SIP transaction timer (64·T1 =
// 32 s) and the control plane's dial deadlines, with a margin.
const DefaultTail = time.Minute

// Trimmer trims after quiet intervals; the zero value is not usable, use
// New.
type Trimmer struct {
	interval time.Duration
	tail     time.Duration
	cycles   func() uint64 // completed GC cycles so far
	trim     func()
	// OnTrim, when set, is called after each trim (logs, metrics).
	OnTrim func()
}

// New returns a Trimmer over the Go runtime (interval <= 0: the default).
func New(interval time.Duration) *Trimmer {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Trimmer{interval: interval, tail: DefaultTail, cycles: gcCycles, trim: debug.FreeOSMemory}
}

// Run trims until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	last := t.cycles()
	trimmed := true     // nothing to give back before the first collection
	var until time.Time // the tail of the current quiet spell
	tick.Every(ctx, t.interval, func() {
		now := t.cycles()
		switch {
		case now != last:
			// Collecting: still busy, or the runtime's own periodic
			// collection. Wait for a quiet interval.
			trimmed = false
		case !trimmed:
			trimmed = true
			until = time.Now().Add(t.tail)
			t.run()
		case time.Now().Before(until):
			t.run() // what the timers let go of since
		}
		last = t.cycles() // our own collection does not count as activity
	})
}

func (t *Trimmer) run() {
	t.trim()
	if t.OnTrim != nil {
		t.OnTrim()
	}
}

// gcCycles is the number of completed GC cycles.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
