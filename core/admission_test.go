package core

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/internal/deadline"
	"github.com/emiago/sipgo/sip"
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
	c := &Core{metrics: m, decisions: deadline.NewScheduler(), channels: map[string]*channel{}, admitted: newAdmitted(time.Minute, 100)}
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
	call := invite("200", "first")
	if why := c.overloaded(call); why != "" {
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
	if why := c.overloaded(invite("200", "second")); why != "control_backlog" {
		t.Fatalf("most calls late: %q, want control_backlog", why)
	}
	// The call admitted before is taken all the same: its INVITE with the
	// credentials comes after the challenge.
	if why := c.overloaded(call); why != "" {
		t.Fatalf("the authenticated INVITE of a call admitted a moment ago: %q", why)
	}
	// A retrieval is taken all the same: it ends a call the PBX carries.
	c.cfg.Directory = finishing{prefix: "*71"}
	if why := c.overloaded(invite("*71333", "retrieve")); why != "" {
		t.Fatalf("a retrieval while most calls are late: %q", why)
	}
	if why := c.overloaded(invite("200", "third")); why != "control_backlog" {
		t.Fatalf("a new call while most calls are late: %q, want control_backlog", why)
	}
	// Not past the hard limits.
	c.cfg.Admission.MaxUndecided = len(c.undecidedQ)
	if why := c.overloaded(invite("*71333", "retrieve")); why != "control_backlog" {
		t.Fatalf("a retrieval with the waiting calls at their bound: %q, want control_backlog", why)
	}
	c.cfg.Admission.MaxLegs = len(c.channels)
	if why := c.overloaded(invite("*71333", "retrieve")); why != "max_legs" {
		t.Fatalf("a retrieval with the legs at their bound: %q, want max_legs", why)
	}
}

// TestBusyLegsRefuseNewCallsNotParkedOnes: past MaxActiveLegs legs that
// are not on music, a new call gets 503 and a retrieval does not; parked
// legs (on music) do not count.
func TestBusyLegsRefuseNewCallsNotParkedOnes(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	hubs := audio.NewHubs(t.Context(), func(string) ([]int16, bool) { return make([]int16, 160), true }, nil)
	c := &Core{metrics: m, decisions: deadline.NewScheduler(), channels: map[string]*channel{}, admitted: newAdmitted(time.Minute, 100), hubs: hubs}
	c.cfg.Admission.MaxActiveLegs = 3
	c.cfg.Admission.defaults(slog.New(slog.DiscardHandler))
	c.cfg.Admission.MaxLegs = 1000
	c.cfg.Directory = finishing{prefix: "*71"}
	leg := func(id string) { c.channels[id] = c.newChannel(id, "inbound") }
	for i := range 3 {
		leg(fmt.Sprint("talking-", i))
	}
	if why := c.overloaded(invite("200", "new")); why != "active_legs" {
		t.Fatalf("a new call with 3 legs busy: %q, want active_legs", why)
	}
	if why := c.overloaded(invite("*71333", "retrieve")); why != "" {
		t.Fatalf("a retrieval with 3 legs busy: %q", why)
	}
	// Two more legs, both parked: they hold no work.
	var parked [2]musicListener
	for i := range parked {
		leg(fmt.Sprint("parked-", i))
		hubs.Get("").Add(&parked[i])
	}
	if why := c.overloaded(invite("200", "new")); why != "active_legs" {
		t.Fatalf("a new call with 3 legs busy and 2 parked: %q, want active_legs", why)
	}
	// One busy leg ends: room for a new call, however many are parked.
	c.mu.Lock()
	delete(c.channels, "talking-0")
	c.mu.Unlock()
	if why := c.overloaded(invite("200", "new")); why != "" {
		t.Fatalf("a new call with 2 legs busy and 2 parked: %q", why)
	}
}

// musicListener is a leg on music on hold that ignores the frames.
type musicListener struct{ _ byte } // not zero-sized: each has an address of its own

func (*musicListener) MusicFrame(audio.Frame, audio.Shard) {}

// invite is a new INVITE from a phone of example.com to user.
func invite(user, callID string) *sip.Request {
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: user, Host: "127.0.0.1"})
	id := sip.CallIDHeader(callID)
	req.AppendHeader(&id)
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{User: "100", Host: "example.com"}, Params: sip.NewParams()})
	return req
}

// finishing is a Directory whose calls to numbers starting with its
// prefix take a call off the books; it answers nothing else.
type finishing struct {
	Directory
	prefix string
}

func (f finishing) Finishing(domain, dialed string) bool {
	return domain == "example.com" && strings.HasPrefix(dialed, f.prefix)
}

// TestAdmittedForgets: the admitted Call-IDs leave after their TTL, and
// past its bound the set forgets the oldest first.
func TestAdmittedForgets(t *testing.T) {
	a := newAdmitted(10*time.Second, 3)
	t0 := time.Now()
	a.add("a", t0)
	a.add("b", t0.Add(time.Second))
	if !a.has("a", t0.Add(10*time.Second)) || a.has("a", t0.Add(11*time.Second)) {
		t.Fatal("a is not held exactly its TTL")
	}
	a.add("c", t0.Add(2*time.Second))
	a.add("d", t0.Add(3*time.Second)) // past the bound: a goes
	if a.has("a", t0.Add(3*time.Second)) || !a.has("b", t0.Add(3*time.Second)) || !a.has("d", t0.Add(3*time.Second)) {
		t.Fatal("the bound did not drop the oldest")
	}
	a.add("e", t0.Add(12500*time.Millisecond)) // b and c expired
	if n := a.len(); n != 2 {
		t.Fatalf("%d held after the others expired, want 2 (d, e)", n)
	}
	a.add("e", t0.Add(13*time.Second))
	if n := a.len(); n != 2 {
		t.Fatalf("%d held after e came again, want 2", n)
	}
}

// TestAdmittedEmptiesAtRest: once calls stop coming, expire forgets a
// burst's Call-IDs and gives back the burst's map.
func TestAdmittedEmptiesAtRest(t *testing.T) {
	a := newAdmitted(time.Second, 1000)
	t0 := time.Now()
	for i := range 500 {
		a.add(strconv.Itoa(i), t0)
	}
	a.expire(t0.Add(500 * time.Millisecond))
	if n := a.len(); n != 500 {
		t.Fatalf("%d held within the TTL, want 500", n)
	}
	a.expire(t0.Add(2 * time.Second))
	if n, m, p := a.len(), len(a.at), a.peak; n != 0 || m != 0 || p != 0 {
		t.Fatalf("after the TTL: %d held, %d in the map, peak %d; want none", n, m, p)
	}
	a.add("next", t0.Add(3*time.Second))
	if !a.has("next", t0.Add(3*time.Second)) {
		t.Fatal("the new map does not hold the next call")
	}
}
