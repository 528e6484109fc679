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
