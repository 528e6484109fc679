package core

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

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
	if n := len(c.undecidedQ); n > 64 || c.undecidedQ[0] != legs[0] {
		t.Fatalf("%d legs queued while the oldest still waits: the decided ones pile up behind it", n)
	}
	c.mu.Unlock()
	legs[0].decided()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.undecided != 0 || len(c.undecidedQ) != 0 || c.undecidedQ != nil {
		t.Fatalf("after every decision: %d undecided, %d legs still queued", c.undecided, len(c.undecidedQ))
	}
}

// TestOneLateDecisionRefusesNothing: one call left waiting for the control
// plane does not get every new call refused; most of them waiting does.
func TestOneLateDecisionRefusesNothing(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Core{metrics: m, decisions: deadline.NewScheduler(), channels: map[string]*channel{}}
	c.cfg.Admission.defaults(slog.New(slog.DiscardHandler))
	c.cfg.Admission.MaxLegs = 1000
	wait := func(age time.Duration) *channel {
		ch := c.newChannel(fmt.Sprint("in-", len(c.undecidedQ)), "inbound")
		ch.created = time.Now().Add(-age)
		c.mu.Lock()
		c.undecided++
		c.undecidedQ = append(c.undecidedQ, ch)
		c.mu.Unlock()
		return ch
	}
	// Legs queue in the order they came: the oldest first.
	wait(time.Minute) // one held up
	for range 5 {
		wait(0)
	}
	if why := c.overloaded(); why != "" {
		t.Fatalf("one late call of six: %q", why)
	}
	c.undecidedQ, c.undecided = nil, 0
	wait(time.Minute)
	for range 5 {
		wait(10 * time.Second)
	}
	for range 5 {
		wait(0)
	}
	if why := c.overloaded(); why != "control_backlog" {
		t.Fatalf("most calls late: %q, want control_backlog", why)
	}
}
