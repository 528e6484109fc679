package control

import (
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

// TestShedFollowsTheTypicalQueue: one worker held up (its queue old) sheds
// nothing; half of them behind sheds every new call; a new call whose own
// start waited too long is shed whatever the rest.
func TestShedFollowsTheTypicalQueue(t *testing.T) {
	h := newHarness(t)
	c := h.c
	now := time.Now()
	c.now = func() time.Time { return now }
	queues := make([]*queue, 8)
	for i := range queues {
		queues[i] = newQueue()
	}
	c.backlog.Store(&backlog{queues: queues})
	fresh := &events.Event{Time: now}
	lag := func(q *queue, age time.Duration) { q.push(job{e: &events.Event{Time: now.Add(-age)}}) }

	lag(queues[0], time.Minute) // one stuck worker
	if c.shed(fresh) {
		t.Fatal("one worker behind shed a new call")
	}
	for _, q := range queues[1:4] {
		lag(q, 5*time.Second)
	}
	if c.shed(fresh) {
		t.Fatal("four workers of eight behind shed a new call")
	}
	lag(queues[4], 5*time.Second)
	if !c.shed(fresh) {
		t.Fatal("most workers behind, and a new call was taken")
	}
	c.backlog.Store(&backlog{queues: []*queue{newQueue(), newQueue()}})
	if !c.shed(&events.Event{Time: now.Add(-2 * time.Second)}) {
		t.Fatal("a call that waited 2 s to be handled was taken")
	}
	if c.shed(fresh) {
		t.Fatal("a fresh call was shed with nothing behind")
	}
}
