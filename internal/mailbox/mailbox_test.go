package mailbox

import (
	"sync"
	"testing"
)

func TestFIFOAndWake(t *testing.T) {
	b := New[int]()
	for i := range 3 {
		if !b.Put(i) {
			t.Fatal("Put on an open box refused")
		}
	}
	select {
	case <-b.Wake():
	default:
		t.Fatal("no wake-up after Put")
	}
	if got := b.Take(); len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("Take = %v", got)
	}
	if got := b.Take(); got != nil {
		t.Fatalf("second Take = %v", got)
	}
	b.Put(7)
	b.Close()
	if b.Put(8) || !b.Closed() {
		t.Fatal("Put after Close accepted")
	}
	if got := b.Take(); len(got) != 1 || got[0] != 7 {
		t.Fatalf("Take after Close = %v", got)
	}
}

func TestConcurrentProducers(t *testing.T) {
	b := New[int]()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				b.Put(g*1000 + i)
			}
		})
	}
	done := make(chan struct{})
	seen := 0
	go func() {
		defer close(done)
		for seen < 8000 {
			<-b.Wake()
			seen += len(b.Take())
		}
	}()
	wg.Wait()
	<-done
	if seen != 8000 {
		t.Fatalf("took %d items, want 8000", seen)
	}
}

// Drain: one deliverer at a time, in order, including what is Put while it
// delivers; a concurrent Drain returns at once and loses nothing.
func TestDrainDeliversInOrderOneAtATime(t *testing.T) {
	b := New[int]()
	var got []int
	inFn := make(chan struct{})
	release := make(chan struct{})
	b.Put(0)
	done := make(chan struct{})
	go func() {
		b.Drain(func(v int) {
			if v == 0 {
				close(inFn)
				<-release
			}
			got = append(got, v)
		})
		close(done)
	}()
	<-inFn
	// While the first Drain delivers 0, another producer queues and
	// drains: it must return at once, leaving 1 and 2 to the first.
	b.Put(1)
	b.Put(2)
	b.Drain(func(v int) { t.Errorf("second Drain delivered %d", v) })
	close(release)
	<-done
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("delivered %v, want [0 1 2]", got)
	}
	// A panicking fn does not leave the box stuck draining.
	b.Put(3)
	func() {
		defer func() { _ = recover() }()
		b.Drain(func(int) { panic("boom") })
	}()
	b.Put(4)
	var after []int
	b.Drain(func(v int) { after = append(after, v) })
	if len(after) != 1 || after[0] != 4 {
		t.Fatalf("after a panicking Drain: delivered %v, want [4]", after)
	}
}
