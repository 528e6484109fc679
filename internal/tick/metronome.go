package tick

import (
	"context"
	"sync"
	"time"
)

// A Metronome wakes a goroutine on a fixed grid of instants, for work that
// must keep time to the millisecond (music on hold: a packet every 20 ms).
//
// A time.Ticker is not enough for that while the garbage collector marks.
// Go runs a timer from the scheduler of the P that holds it, and a P the
// collector lends to an idle mark worker does not look at its timers until
// the worker is preempted, 10-20 ms later: an idle worker gives way at once
// only to runnable goroutines and to network poller events. So on Linux a
// Metronome is a kernel interval timer (timerfd) read through the network
// poller: its expiry is a poller event, and the kernel keeps the grid (no
// drift, however late a wake). A Go timer 2 ms after each instant stays as
// a fallback, for a machine whose Ps are all busy (then the poller is
// looked at less often than timers): whichever wakes first is the tick.
// Elsewhere, or if the kernel refuses, it is a Go timer alone.
type Metronome struct {
	src  ticks
	stop func() bool // the context.AfterFunc that interrupts Wait
	once sync.Once
}

// ticks is a Metronome's source.
type ticks interface {
	wait() bool // until the next tick; false once interrupted
	interrupt() // safe from any goroutine, more than once
	close()
}

// NewMetronome starts a metronome whose first tick is first from now and
// then one every period, until ctx ends or Stop.
func NewMetronome(ctx context.Context, first, period time.Duration) *Metronome {
	first = max(first, time.Nanosecond) // a zero expiry would disarm a timerfd
	src, err := newKernelTicks(first, period)
	if err != nil {
		src = newGoTicks(first, period)
	}
	m := &Metronome{src: src}
	m.stop = context.AfterFunc(ctx, src.interrupt)
	return m
}

// Wait blocks until the next tick and returns the time it woke, or false
// once ctx has ended or Stop was called. Ticks are not queued: a wake
// after several periods is one tick (the caller reads the clock).
func (m *Metronome) Wait() (time.Time, bool) {
	if !m.src.wait() {
		return time.Time{}, false
	}
	return time.Now(), true
}

// Stop releases the metronome; a Wait in progress returns false.
func (m *Metronome) Stop() {
	m.once.Do(func() {
		m.stop()
		m.src.interrupt()
		m.src.close()
	})
}

// goTicks is the portable source: a Go timer re-armed to each instant of
// the grid.
type goTicks struct {
	start  time.Time // the first tick
	period time.Duration
	t      *time.Timer
	done   chan struct{}
	once   sync.Once
}

func newGoTicks(first, period time.Duration) *goTicks {
	start := time.Now().Add(first)
	return &goTicks{start: start, period: period, t: time.NewTimer(first), done: make(chan struct{})}
}

func (g *goTicks) wait() bool {
	select {
	case <-g.t.C:
	case <-g.done:
		return false
	}
	// The next instant of the grid after now.
	k := time.Since(g.start)/g.period + 1
	g.t.Reset(time.Until(g.start.Add(k * g.period)))
	return true
}

func (g *goTicks) interrupt() { g.once.Do(func() { close(g.done) }) }

func (g *goTicks) close() { g.t.Stop() }
