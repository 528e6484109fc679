package control

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

// A new call waiting for its phone's earlier event (handled slowly on
// another worker) does not hold up its own worker: another customer's
// event queued behind it is handled at once, the new call goes as soon as
// the earlier event is done, and the later events of its own conversation
// stay behind it, in order.
func TestWorkerDoesNotBlockBehindAWaitingNewCall(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := newSequencer()
	var mu sync.Mutex
	var order []string
	handled := make(chan string, 16)
	release := make(chan struct{})
	handle := func(j job) {
		if j.e.Call == "hold-leg" {
			<-release // John's hold takes its time on the other worker
		}
		mu.Lock()
		order = append(order, j.e.Type+"/"+j.e.Call)
		mu.Unlock()
		s.finish(j.t)
		handled <- j.e.Type + "/" + j.e.Call
	}
	slow, busy := newQueue(), newQueue()
	for _, q := range []*queue{slow, busy} {
		w := newWorker(q, handle)
		go w.run(ctx)
	}
	admit := func(q *queue, typ, account, call string) {
		e := seqEvent(typ, account, call)
		if account == "" {
			e.Customer, e.Account = "acme", "201"
		}
		q.push(job{e: e, t: s.admit(e)})
	}
	admit(slow, events.CallHeld, "333", "hold-leg")
	admit(busy, events.CallStarted, "333", "dial-leg") // waits for the hold
	admit(busy, events.CallEnded, "333", "dial-leg")   // behind its own start
	admit(busy, events.CallStarted, "", "acme-leg")    // someone else's call

	select {
	case got := <-handled:
		if got != events.CallStarted+"/acme-leg" {
			t.Fatalf("first handled %s, want the other customer's call", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other customer's call waited behind 333's new call")
	}
	select {
	case got := <-handled:
		t.Fatalf("%s handled before 333's hold was done", got)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for range 3 {
		select {
		case <-handled:
		case <-time.After(5 * time.Second):
			t.Fatal("333's events were not taken up after the hold")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{events.CallStarted + "/acme-leg", events.CallHeld + "/hold-leg",
		events.CallStarted + "/dial-leg", events.CallEnded + "/dial-leg"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
	if n := s.inFlight(); n != 0 {
		t.Errorf("%d accounts still in flight", n)
	}
}

// A queued resume job carries no event: the backlog age skips it.
func TestBacklogSkipsResumeJobs(t *testing.T) {
	q := newQueue()
	q.push(job{resume: "leg"})
	if o := q.oldest(); !o.IsZero() {
		t.Fatalf("oldest %v with only a resume job queued", o)
	}
	b := &backlog{queues: []*queue{q}}
	if d := b.delay(time.Now()); d != 0 {
		t.Fatalf("delay %v", d)
	}
}
