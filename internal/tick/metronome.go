package tick

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
// Elsewhere, if the kernel refuses, or if reading the kernel timer ever
// fails, it is a Go timer alone, on the same grid: a Metronome never stops
// ticking before its context ends or Stop.
type Metronome struct {
	start  time.Time // the first instant of the grid
	period time.Duration
	stop   func() bool // the context.AfterFunc that interrupts Wait
	once   sync.Once

	mu       sync.Mutex
	src      ticks
	ended    bool                  // ctx done or Stop
	fellBack atomic.Pointer[error] // why the kernel timer was given up
}

// ticks is a Metronome's source.
type ticks interface {
	// wait blocks until the next tick (nil), until interrupted
	// (errInterrupted, then at once ever after), or fails.
	wait() error
	interrupt() // safe from any goroutine, more than once
	close()
}

// errInterrupted is what a source's wait returns once interrupted.
var errInterrupted = errors.New("tick: interrupted")

// NewMetronome starts a metronome whose first tick is first from now and
// then one every period, until ctx ends or Stop.
func NewMetronome(ctx context.Context, first, period time.Duration) *Metronome {
	first = max(first, time.Nanosecond) // a zero expiry would disarm a timerfd
	start := time.Now().Add(first)
	src, err := newKernelTicks(start, period)
	if err != nil {
		src = newGoTicks(start, period)
	}
	return newMetronome(ctx, start, period, src)
}

func newMetronome(ctx context.Context, start time.Time, period time.Duration, src ticks) *Metronome {
	m := &Metronome{start: start, period: period, src: src}
	m.stop = context.AfterFunc(ctx, m.end)
	return m
}

// Wait blocks until the next tick and returns the time it woke, or false
// once ctx has ended or Stop was called. Ticks are not queued: a wake
// after several periods is one tick (the caller reads the clock).
func (m *Metronome) Wait() (time.Time, bool) {
	for {
		m.mu.Lock()
		src := m.src
		m.mu.Unlock()
		err := src.wait()
		if err == nil {
			return time.Now(), true
		}
		if errors.Is(err, errInterrupted) || !m.fallBack(src, err) {
			return time.Time{}, false
		}
	}
}

// FellBack returns why the metronome gave up its kernel timer for a Go
// timer, or nil while it has not (or never had one).
func (m *Metronome) FellBack() error {
	if p := m.fellBack.Load(); p != nil {
		return *p
	}
	return nil
}

// fallBack replaces the failed source with a Go timer on the same grid,
// and reports false if the metronome has ended meanwhile.
func (m *Metronome) fallBack(failed ticks, err error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return false
	}
	if m.src == failed {
		failed.close()
		m.src = newGoTicks(m.start, m.period)
		m.fellBack.Store(&err)
	}
	return true
}

// end interrupts the source for good (ctx done or Stop).
func (m *Metronome) end() {
	m.mu.Lock()
	m.ended = true
	src := m.src
	m.mu.Unlock()
	src.interrupt()
}

// Stop releases the metronome; a Wait in progress returns false.
func (m *Metronome) Stop() {
	m.once.Do(func() {
		m.stop()
		m.end()
		m.mu.Lock()
		m.src.close()
		m.mu.Unlock()
	})
}

// grid is a source's grid of instants, the first at start and then one
// every period, and how many of them it has ticked.
type grid struct {
	start  time.Time
	period time.Duration
	last   int64 // grid instants ticked so far
}

// advance reports whether an instant of the grid has passed since the
// last tick (and counts it ticked): a wake before the first instant, or a
// second wake for an instant already ticked, is not a tick.
func (g *grid) advance() bool {
	since := time.Since(g.start)
	if since < 0 {
		return false
	}
	if n := int64(since/g.period) + 1; n > g.last {
		g.last = n
		return true
	}
	return false
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

// newGoTicks ticks at start and every period after it; joining a grid
// whose start has passed, it first ticks at the grid's next instant.
func newGoTicks(start time.Time, period time.Duration) *goTicks {
	g := &goTicks{start: start, period: period, done: make(chan struct{})}
	g.t = time.NewTimer(g.untilNext())
	return g
}

// untilNext is the time to the first instant of the grid after now (the
// start itself if it is still ahead).
func (g *goTicks) untilNext() time.Duration {
	since := time.Since(g.start)
	if since < 0 {
		return -since
	}
	k := since/g.period + 1
	return time.Until(g.start.Add(k * g.period))
}

func (g *goTicks) wait() error {
	select {
	case <-g.done:
		return errInterrupted
	default:
	}
	select {
	case <-g.t.C:
	case <-g.done:
		return errInterrupted
	}
	g.t.Reset(g.untilNext())
	return nil
}

func (g *goTicks) interrupt() { g.once.Do(func() { close(g.done) }) }

func (g *goTicks) close() { g.t.Stop() }
