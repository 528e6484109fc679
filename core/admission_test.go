package core

import (
	"fmt"
	"testing"

	"github.com/callpark/callpark/internal/deadline"
)

// TestDecidedLegsLeaveTheAdmissionQueue: once the control plane has acted
// on every waiting leg, the admission queue holds none of them, without
// another INVITE coming to trim it. (It used to keep the last legs of a
// load, their dialogs and media, reachable until the next call.)
func TestDecidedLegsLeaveTheAdmissionQueue(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Core{metrics: m, decisions: deadline.NewScheduler()}
	var legs []*channel
	for i := range 100 {
		ch := c.newChannel(fmt.Sprintf("in-%d", i), "inbound") // an inbound leg
		c.mu.Lock()
		c.undecided++
		c.undecidedQ = append(c.undecidedQ, ch)
		c.mu.Unlock()
		legs = append(legs, ch)
	}
	// Decided out of order: the head goes last.
	for _, ch := range legs[1:] {
		ch.decided()
	}
	c.mu.Lock()
	if n := len(c.undecidedQ); n != 100 {
		t.Fatalf("%d legs queued while the oldest still waits, want 100 (the queue's age is its oldest)", n)
	}
	c.mu.Unlock()
	legs[0].decided()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.undecided != 0 || len(c.undecidedQ) != 0 || c.undecidedQ != nil {
		t.Fatalf("after every decision: %d undecided, %d legs still queued", c.undecided, len(c.undecidedQ))
	}
}
