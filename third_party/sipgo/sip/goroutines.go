package sip

// callpark patch 4 (see ../README.md): the transaction layer handles each
// message on a goroutine, as upstream does, but a goroutine that has
// finished one waits a moment for the next instead of exiting: a new
// goroutine starts with a small stack and grows it, copying it, on the
// way down a handler's calls. A handler may block as long as it likes (an
// INVITE's waits for its ACK): a message that finds no goroutine waiting
// gets a new one, as before, so no handler ever waits for another.
//
// The waiting goroutines are a stack, each on a channel of its own: the
// one idle the shortest takes the next message, and one timer ends those
// idle too long (a timer each and one shared channel, selected on at every
// wait, cost 1.5 % of callparkd's CPU). callpark's internal/gopool is the
// same; this module cannot import it.

import (
	"sync"
	"time"
)

// goroutineIdle is how long a finished goroutine waits for a message.
const goroutineIdle = 5 * time.Second

// goroutines runs functions on goroutines that wait for the next one.
type goroutines struct {
	mu      sync.Mutex
	waiting []*goroutine // the most recently idle last
	sweep   *time.Timer  // ends the goroutines idle too long
	armed   bool
}

type goroutine struct {
	work  chan func() // room for one
	since time.Time
}

func newGoroutines() *goroutines {
	g := &goroutines{}
	g.sweep = time.AfterFunc(time.Hour, g.trim)
	g.sweep.Stop()
	return g
}

// Go runs f on a waiting goroutine, or on a new one.
func (g *goroutines) Go(f func()) {
	g.mu.Lock()
	if n := len(g.waiting); n > 0 {
		w := g.waiting[n-1]
		g.waiting[n-1] = nil
		g.waiting = g.waiting[:n-1]
		g.mu.Unlock()
		w.work <- f
		return
	}
	g.mu.Unlock()
	go g.run(&goroutine{work: make(chan func(), 1)}, f)
}

func (g *goroutines) run(w *goroutine, f func()) {
	for ok := true; ok; f, ok = <-w.work {
		f()
		w.since = time.Now()
		g.mu.Lock()
		g.waiting = append(g.waiting, w)
		if !g.armed {
			g.armed = true
			g.sweep.Reset(goroutineIdle)
		}
		g.mu.Unlock()
	}
}

// trim ends the goroutines idle goroutineIdle or more (the bottom of the
// stack) and sets the timer for the next.
func (g *goroutines) trim() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	n := 0
	for n < len(g.waiting) && now.Sub(g.waiting[n].since) >= goroutineIdle {
		close(g.waiting[n].work)
		n++
	}
	if n > 0 {
		kept := copy(g.waiting, g.waiting[n:])
		clear(g.waiting[kept:])
		g.waiting = g.waiting[:kept]
		if kept == 0 {
			g.waiting = nil
		}
	}
	if len(g.waiting) == 0 {
		g.armed = false
		return
	}
	g.sweep.Reset(goroutineIdle - now.Sub(g.waiting[0].since))
}
