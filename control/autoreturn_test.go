package control

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// memParked is a ParkedStore in memory.
type memParked struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memParked) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *memParked) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memParked) All(context.Context) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, v := range s.m {
		out = append(out, v)
	}
	return out, nil
}

// newReturnHarness is newHarness with automatic retrieval on for demo
// (distinctive ring, 2 attempts) and 200 in ring_then_forward to 201.
func newReturnHarness(t *testing.T, persist ParkedStore) *harness {
	t.Helper()
	files := maps.Clone(testDialplans)
	demo := files["customers/demo.yaml"]
	demo = strings.Replace(demo, "  dial_timeout: 20s\n",
		"  dial_timeout: 20s\n  auto_retrieve: {enabled: true, after: 60s, ring: distinctive, attempts: 2}\n", 1)
	files["customers/demo.yaml"] = strings.Replace(demo, `{extension: "200", password: p200}`,
		`{extension: "200", password: p200, answering_mode: ring_then_forward, forward_to: "201"}`, 1)
	set := loadDialplans(t, files)
	return harnessOn(t, func() *dialplans.Set { return set }, func(c *Config) { c.Persist = persist })
}

// returnDue moves the clock past demo's return time (60 s) and starts
// the automatic return of client's parked call.
func (h *harness) returnDue(client string) {
	h.later(61 * time.Second)
	h.c.startReturn(h.ctx, client)
}

// returnRinging333 parks a caller under 333 and has its return ring 333
// (leg out-2); the commands so far are taken. It returns the caller's leg.
func (h *harness) returnRinging333() string {
	client, _ := h.parked333("demo")
	h.returnDue(client)
	h.take()
	h.send(outbound("demo", "out-2", client, "333"))
	return client
}

// later moves the harness clock d ahead.
func (h *harness) later(d time.Duration) {
	now := h.c.now()
	h.c.now = func() time.Time { return now.Add(d) }
}

func (h *harness) lastDial() *events.Command {
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	for i := len(h.bus.cmds) - 1; i >= 0; i-- {
		if h.bus.cmds[i].Op == events.OpDial {
			return h.bus.cmds[i]
		}
	}
	return nil
}

func TestAutoReturnSchedulesAndDials(t *testing.T) {
	h := newReturnHarness(t, nil)
	client, _ := h.parked333("demo")
	p := h.c.State().ParkedByChannel(client)
	if p == nil || p.Due.Sub(p.Since) != 60*time.Second {
		t.Fatalf("park %+v: want due 60s after", p)
	}
	if due, ok := h.c.returnsDue.Due(client); !ok || !due.Equal(p.Due) {
		t.Fatalf("not scheduled: %v %v", due, ok)
	}
	// Early: nothing happens.
	h.c.startReturn(h.ctx, client)
	h.expect()
	h.returnDue(client)
	d := h.lastDial()
	h.take()
	if d == nil || d.Call != client || d.Account != "333" || !d.Bridge || d.AlertInfo != dialplans.DefaultAlertInfo ||
		d.From.Display != "Parked: Client" || d.From.User != "+15559870000" || d.TimeoutMs != 20000 {
		t.Fatalf("return dial %+v", d)
	}
	// Ringing: the park stays, a manual retrieval may still win.
	if h.c.State().ParkedByChannel(client) == nil {
		t.Fatal("park gone while the return rings")
	}
	leg := "out-2"
	h.send(outbound("demo", leg, client, "333"))
	h.send(&events.Event{Type: events.CallAnswered, Customer: "demo", Call: leg, Direction: events.Outbound, DialedFor: client, Account: "333"})
	// The core bridges on its own (the caller came in from a trunk: no
	// identity update goes to a carrier).
	h.expect()
	var types []string
	for _, e := range h.events() {
		types = append(types, e.Type)
		if e.Park == nil || e.Park.By != "333" {
			t.Fatalf("%s without By: %+v", e.Type, e.Park)
		}
	}
	if strings.Join(types, ",") != "call.returned,call.retrieved" {
		t.Fatalf("events %q", types)
	}
	h.checkChannel(client, state.StateUp, leg)
	h.checkChannel(leg, state.StateUp, client)
	if h.c.returnsDue.Len() != 0 || h.c.State().ParkedCount() != 0 {
		t.Fatal("park or timer left after the return")
	}
	// The parker hangs up: the caller goes too.
	h.send(ev(events.CallEnded, "demo", leg))
	h.expect("hangup " + client)
}

func TestAutoReturnManualRetrievalCancelsRing(t *testing.T) {
	h := newReturnHarness(t, nil)
	client := h.returnRinging333()
	h.send(inbound("demo", "r1", "999", "*71333"))
	cmds := h.take()
	if len(cmds) == 0 || cmds[0] != "hangup out-2" {
		t.Fatalf("ringing return not cancelled first: %q", cmds)
	}
	// A late answer of the cancelled leg is hung up, and changes nothing.
	h.send(&events.Event{Type: events.CallAnswered, Customer: "demo", Call: "out-2", Direction: events.Outbound, DialedFor: client, Account: "333"})
	h.expect("hangup out-2")
	h.checkChannel(client, state.StateUp, "r1")
	for _, e := range h.events() {
		if e.Type == events.CallReturned || e.Type == events.CallReturnFailed {
			t.Fatalf("unexpected %s", e.Type)
		}
	}
}

func TestAutoReturnRingThenForwardThenGiveUp(t *testing.T) {
	h := newReturnHarness(t, nil)
	client, _ := h.talkAndHold("demo", "c1", "200")
	h.send(inbound("demo", "p1", "200", "*70200"))
	h.take()
	h.events()
	failed := func(leg string, code int) {
		h.t.Helper()
		h.send(&events.Event{Type: events.CallDialFailed, Customer: "demo", Call: leg, Direction: events.Outbound, DialedFor: client, Code: code})
	}
	h.returnDue(client)
	if d := h.lastDial(); d.Account != "200" {
		t.Fatalf("first return rings %s", d.Account)
	}
	h.take()
	failed("out-2", 486) // parker busy: forward to 201 at once
	if d := h.lastDial(); d == nil || d.Account != "201" {
		t.Fatalf("no forward: %+v", d)
	}
	h.take()
	failed("out-3", 480) // 201 does not answer: try again after 60s
	h.expect()
	p := h.c.State().ParkedByChannel(client)
	if p == nil || p.Returns != 1 {
		t.Fatalf("park after attempt 1: %+v", p)
	}
	var got []string
	for _, e := range h.events() {
		got = append(got, e.Type+":"+e.Account+":"+e.Reason)
	}
	want := "call.return_failed:200:busy,call.forwarded:201:,call.return_failed:201:no_answer"
	if strings.Join(got, ",") != want {
		t.Fatalf("events\n got  %s\n want %s", strings.Join(got, ","), want)
	}
	h.returnDue(client)
	h.take()
	failed("out-4", 480)
	h.take()
	failed("out-5", 486)
	// Two attempts made: goodbye.
	h.expect("play " + client + " goodbye +hangup")
	evs := h.events()
	last := evs[len(evs)-1]
	if last.Type != events.CallReturnFailed || last.Reason != ReasonGaveUp {
		t.Fatalf("last event %s %s", last.Type, last.Reason)
	}
	if h.c.State().ParkedCount() != 0 {
		t.Fatal("still parked after goodbye")
	}
	h.send(ev(events.CallEnded, "demo", client))
	for _, e := range h.events() {
		if e.Type == events.CallAbandoned {
			t.Fatal("abandoned after goodbye")
		}
	}
}

func TestAutoReturnCallerLeavesWhileRinging(t *testing.T) {
	h := newReturnHarness(t, nil)
	client := h.returnRinging333()
	// The core cancels the return (487) before the caller's end is seen.
	h.send(&events.Event{Type: events.CallDialFailed, Customer: "demo", Call: "out-2", Direction: events.Outbound, DialedFor: client, Code: 487})
	h.send(ev(events.CallEnded, "demo", client))
	var types []string
	for _, e := range h.events() {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "call.abandoned" {
		t.Fatalf("events %q", types)
	}
	if h.c.returnsDue.Len() != 0 || h.c.State().ParkedCount() != 0 {
		t.Fatal("timer or park left")
	}
}

func TestAutoReturnPersistAndRestore(t *testing.T) {
	kv := &memParked{m: map[string][]byte{}}
	h := newReturnHarness(t, kv)
	client, _ := h.parked333("demo")
	h.c.persist.flush(h.ctx)
	if len(kv.m) != 1 {
		t.Fatalf("stored %d parks", len(kv.m))
	}
	var rec parkedRecord
	for _, v := range kv.m {
		json.Unmarshal(v, &rec)
	}
	if rec.Channel != client || rec.Key != "333" || rec.Due.IsZero() || rec.Parker != "333" {
		t.Fatalf("stored %+v", rec)
	}

	// A new control plane over the same store: the park and its timer are
	// back, the leg too.
	h2 := newReturnHarness(t, kv)
	h2.c.restore(h2.ctx, func(string) bool { return true })
	p := h2.c.State().ParkedByChannel(client)
	if p == nil || !p.Due.Equal(rec.Due) {
		t.Fatalf("restored %+v", p)
	}
	if due, ok := h2.c.returnsDue.Due(client); !ok || !due.Equal(rec.Due) {
		t.Fatal("timer not re-armed")
	}
	h2.checkChannel(client, state.StateParked, "")
	// A leg the core no longer knows is dropped from the store.
	h3 := newReturnHarness(t, kv)
	h3.bus.setFail(func(c *events.Command) *events.Reply {
		if c.Op == events.OpRing {
			return &events.Reply{Code: events.ErrNotFound, Error: "gone"}
		}
		return nil
	})
	h3.c.restore(h3.ctx, func(string) bool { return true })
	h3.c.persist.flush(h3.ctx)
	if h3.c.State().ParkedCount() != 0 || len(kv.m) != 0 {
		t.Fatalf("stale park kept: %d in state, %d stored", h3.c.State().ParkedCount(), len(kv.m))
	}
	// Retrieval deletes the stored park.
	kv.Put(h2.ctx, kvKey("demo", "333"), []byte("{}"))
	h2.send(inbound("demo", "r1", "999", "*71333"))
	h2.c.persist.flush(h2.ctx)
	if len(kv.m) != 0 {
		t.Fatal("retrieved park still stored")
	}
}
