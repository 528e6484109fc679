package core

import (
	"sync"
	"testing"
	"time"
)

// TestStepsOverTheSamePairNeverDeadlock: two steps naming the same legs
// in opposite orders take their locks in one order; a leg named twice,
// or nil, is locked once or not at all.
func TestStepsOverTheSamePairNeverDeadlock(t *testing.T) {
	a, b := &channel{id: "a"}, &channel{id: "b"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for range 1000 {
			wg.Go(func() { lockSteps(a, b)() })
			wg.Go(func() { lockSteps(b, a, nil, b)() })
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock")
	}
	unlock := lockSteps(a, a)
	if b.steps.TryLock() {
		b.steps.Unlock()
	} else {
		t.Fatal("b locked by a step that named only a")
	}
	unlock()
	if !a.steps.TryLock() {
		t.Fatal("a still locked after the step")
	}
}
