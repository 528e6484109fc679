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
// third_party/sipgo carries the same few lines for the messages it hands
// to callpark (its patch 4): a module of its own cannot import this one.
package gopool

import (
	"sync/atomic"
	"time"
)

// DefaultIdle is how long a goroutine waits for more work before it ends.
const DefaultIdle = 5 * time.Second

// Pool runs functions on waiting goroutines. The zero value is not usable:
// make one with New. Safe for concurrent use.
type Pool struct {
	idle    time.Duration
	work    chan func() // unbuffered: a send succeeds only into a waiting goroutine
	waiting atomic.Int32
}

// New returns a pool whose goroutines wait idle (<= 0: DefaultIdle) for
// more work.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{idle: idle, work: make(chan func())}
}

// Go runs f on a waiting goroutine, or on a new one.
func (p *Pool) Go(f func()) {
	if p.waiting.Load() > 0 {
		select {
		case p.work <- f:
			return
		default:
		}
	}
	go p.run(f)
}

// Idle is how many goroutines wait for work.
func (p *Pool) Idle() int { return int(p.waiting.Load()) }

func (p *Pool) run(f func()) {
	f()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		p.waiting.Add(1)
		select {
		case f = <-p.work:
			p.waiting.Add(-1)
			f()
			t.Reset(p.idle)
		case <-t.C:
			p.waiting.Add(-1)
			return
		}
	}
}
