package sip

// callpark patch 4 (see ../README.md): the transaction layer handles each
// message on a goroutine, as upstream does, but a goroutine that has
// finished one waits a moment for the next instead of exiting: a new
// goroutine starts with a small stack and grows it, copying it, on the
// way down a handler's calls. A handler may block as long as it likes (an
// INVITE's waits for its ACK): a message that finds no goroutine waiting
// gets a new one, as before, so no handler ever waits for another.

import (
	"sync/atomic"
	"time"
)

// goroutineIdle is how long a finished goroutine waits for a message.
const goroutineIdle = 5 * time.Second

// goroutines runs functions on goroutines that wait for the next one.
type goroutines struct {
	work    chan func() // unbuffered: a send succeeds only into a waiting goroutine
	waiting atomic.Int32
}

func newGoroutines() *goroutines { return &goroutines{work: make(chan func())} }

// Go runs f on a waiting goroutine, or on a new one.
func (g *goroutines) Go(f func()) {
	if g.waiting.Load() > 0 {
		select {
		case g.work <- f:
			return
		default:
		}
	}
	go g.run(f)
}

func (g *goroutines) run(f func()) {
	f()
	t := time.NewTimer(goroutineIdle)
	defer t.Stop()
	for {
		g.waiting.Add(1)
		select {
		case f = <-g.work:
			g.waiting.Add(-1)
			f()
			t.Reset(goroutineIdle)
		case <-t.C:
			g.waiting.Add(-1)
			return
		}
	}
}
