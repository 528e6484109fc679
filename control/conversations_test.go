package control

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

// TestConversationSetAsideHoldsNoWorker: a new call whose phone's hold is
// still queued behind a slow event of another conversation is set aside,
// not waited for by a worker: with two workers, one busy, the other still
// handles a third conversation; the new call goes right after the hold.
func TestConversationSetAsideHoldsNoWorker(t *testing.T) {
	cs := newConversations(newSequencer())
	var mu sync.Mutex
	var order []string
	slow := make(chan struct{})
	handled := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			cs.work(ctx, func(e *events.Event) {
				if e.Type == "slow" {
					<-slow
				}
				mu.Lock()
				order = append(order, e.Type+" "+e.Call)
				mu.Unlock()
				handled <- e.Type + " " + e.Call
			})
		})
	}
	defer func() { cancel(); cs.close(); wg.Wait() }()
	wait := func(want string) {
		t.Helper()
		select {
		case got := <-handled:
			if got != want {
				t.Fatalf("handled %q, want %q (so far %q)", got, want, order)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%q not handled (so far %q)", want, order)
		}
	}
	cs.push("a", &events.Event{Type: "slow", Customer: "demo", Call: "a"})
	cs.push("a", &events.Event{Type: events.CallHeld, Customer: "demo", Account: "333", Call: "a"})
	cs.push("b", &events.Event{Type: events.CallStarted, Direction: events.Inbound, Customer: "demo", Account: "333", Call: "b"})
	cs.push("c", &events.Event{Type: events.CallAnswered, Customer: "demo", Call: "c"})
	// One worker is in a's slow event, the other set b aside (it waits for
	// a's hold) and went on to c.
	wait("call.answered c")
	close(slow)
	wait("slow a")
	wait("call.held a")
	wait("call.started b")
}
