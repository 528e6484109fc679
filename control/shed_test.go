package control

import (
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

// TestShedFollowsTheRunQueue: new calls are shed while a conversation has
// waited longer than ShedAfter for a worker, or when the call's own start
// event did; not while every conversation is handled in time.
func TestShedFollowsTheRunQueue(t *testing.T) {
	h := newHarness(t)
	c := h.c
	now := time.Now()
	c.now = func() time.Time { return now }
	cs := newConversations(newSequencer())
	c.convs.Store(cs)
	fresh := &events.Event{Time: now}
	if c.shed(fresh) {
		t.Fatal("a fresh call was shed with nothing waiting")
	}
	cs.push("a", &events.Event{Type: events.CallAnswered, Call: "a"}) // no worker runs
	if c.shed(fresh) {
		t.Fatal("a conversation waiting a moment shed a new call")
	}
	c.now = func() time.Time { return now.Add(2 * time.Second) }
	if !c.shed(&events.Event{Time: now.Add(2 * time.Second)}) {
		t.Fatal("a conversation waited 2 s for a worker, and a new call was taken")
	}
	c.convs.Store(newConversations(newSequencer()))
	if !c.shed(&events.Event{Time: now}) {
		t.Fatal("a call that waited 2 s to be handled was taken")
	}
}
