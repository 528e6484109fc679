package gopool

import (
	"runtime"
	"strconv"
	"strings"
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

// The goroutine idle the shortest takes the next piece of work; the one
// idle longest ends first.
func TestTheLastIdleWorksFirstAndTheFirstIdleEndsFirst(t *testing.T) {
	p := New(300 * time.Millisecond)
	ids := make(chan int64, 4)
	block := make(chan struct{})
	var started sync.WaitGroup
	for range 2 { // two goroutines at once
		started.Add(1)
		p.Go(func() { ids <- goid(); started.Done(); <-block })
	}
	started.Wait()
	first, second := <-ids, <-ids
	close(block)
	waitFor(t, func() bool { return p.Idle() == 2 })
	// Which of the two went idle last is up to the scheduler: ask it.
	p.mu.Lock()
	last := p.waiting[1]
	p.mu.Unlock()
	done := make(chan struct{})
	var got int64
	p.Go(func() { got = goid(); close(done) })
	<-done
	if got != first && got != second {
		t.Fatalf("work ran on a new goroutine (%d), not one of %d, %d", got, first, second)
	}
	waitFor(t, func() bool { return p.Idle() == 2 })
	p.mu.Lock()
	if p.waiting[0] == last {
		t.Error("the goroutine idle the shortest did not take the work")
	}
	p.mu.Unlock()
	waitFor(t, func() bool { return p.Idle() == 0 })
}

// goid is the calling goroutine's id, from its stack trace header.
func goid() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	id, _ := strconv.ParseInt(f[1], 10, 64)
	return id
}
