package gopool

import (
	"sync"
	"testing"
	"time"
)

// A goroutine that has finished its work runs the next piece; one that
// is still busy never holds a new piece up; idle ones end.
func TestWorkRunsOnTheGoroutinesThatWait(t *testing.T) {
	p := New(200 * time.Millisecond)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	waitFor(t, func() bool { return p.Idle() == 1 })

	block := make(chan struct{})
	started := make(chan struct{})
	p.Go(func() { close(started); <-block }) // takes the waiting goroutine
	<-started
	var wg sync.WaitGroup
	wg.Add(1)
	p.Go(wg.Done) // none waits: a new goroutine, not a queue behind the blocked one
	wg.Wait()
	close(block)
	waitFor(t, func() bool { return p.Idle() == 2 })
	waitFor(t, func() bool { return p.Idle() == 0 }) // after idle
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkGo(b *testing.B) {
	p := New(0)
	var wg sync.WaitGroup
	for b.Loop() {
		wg.Add(1)
		p.Go(wg.Done)
		wg.Wait()
	}
}
