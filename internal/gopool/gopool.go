// Package gopool runs short-lived work on goroutines that, once done,
// wait a moment for the next piece instead of exiting.
//
// A new goroutine starts with a small stack and grows it, copying it
// each time it doubles, on the way down a deep call path (a SIP dialog's
// request, a transaction, a socket write). A call's core work starts a few
// such goroutines (a dial, the wait for an ACK, a NOTIFY), and their
// stack copying was 2 % of callparkd's CPU at 1,000 park+retrieve
// cycles/s. A goroutine kept from the last piece of work already has the
// stack it needs. Work never waits for another: a Go that finds no idle
// goroutine starts a new one, so there is no bound and no queue, and a
// blocked piece of work holds only its own goroutine.
//
// The idle goroutines are a stack: the one idle the shortest takes the
// next piece (its stack is the likeliest to be grown and in cache), and
// those idle longest end first. Each waits on a channel of its own, and
// one timer for the whole pool ends those idle too long: a timer each and
// one shared channel, selected on at every wait, were 2.7 % of the CPU.
//
// The core gives its pool to sipgo's transaction layer too
// (third_party/sipgo, patch 4), so SIP messages and the core's own work
// share one set of waiting goroutines.
package gopool

import (
	"sync"
	"time"
)

// DefaultIdle is how long a goroutine waits for more work before it ends.
const DefaultIdle = 5 * time.Second

// Pool runs functions on waiting goroutines. The zero value is not usable:
// make one with New. Safe for concurrent use.
type Pool struct {
	idle time.Duration

	mu sync.Mutex
	// waiting are the idle goroutines, the most recently idle last.
	waiting []*worker
	sweep   *time.Timer // ends the goroutines idle too long
	armed   bool        // sweep is set
}

// worker is one goroutine: it runs what it is sent, and ends when its
// channel is closed.
type worker struct {
	work  chan func() // room for one: Go never waits
	since time.Time   // idle since
}

// New returns a pool whose goroutines wait idle (<= 0: DefaultIdle) for
// more work.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	p := &Pool{idle: idle}
	p.sweep = time.AfterFunc(time.Hour, p.trim)
	p.sweep.Stop()
	return p
}

// Go runs f on a waiting goroutine, or on a new one.
func (p *Pool) Go(f func()) {
	p.mu.Lock()
	if n := len(p.waiting); n > 0 {
		w := p.waiting[n-1]
		p.waiting[n-1] = nil
		p.waiting = p.waiting[:n-1]
		p.mu.Unlock()
		w.work <- f
		return
	}
	p.mu.Unlock()
	go p.run(&worker{work: make(chan func(), 1)}, f)
}

// Idle is how many goroutines wait for work.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting)
}

func (p *Pool) run(w *worker, f func()) {
	for ok := true; ok; f, ok = <-w.work {
		f()
		w.since = time.Now()
		p.mu.Lock()
		p.waiting = append(p.waiting, w)
		if !p.armed {
			p.armed = true
			p.sweep.Reset(p.idle)
		}
		p.mu.Unlock()
	}
}

// trim ends the goroutines idle for p.idle or more (the oldest, at the
// bottom of the stack) and sets the timer for the next.
func (p *Pool) trim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	n := 0
	for n < len(p.waiting) && now.Sub(p.waiting[n].since) >= p.idle {
		close(p.waiting[n].work)
		n++
	}
	if n > 0 {
		kept := copy(p.waiting, p.waiting[n:])
		clear(p.waiting[kept:])
		p.waiting = p.waiting[:kept]
		if kept == 0 {
			p.waiting = nil // a burst's array goes too
		}
	}
	if len(p.waiting) == 0 {
		p.armed = false
		return
	}
	p.sweep.Reset(p.idle - now.Sub(p.waiting[0].since))
}
