package control

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// runHarness is a harness whose Control runs (Run), so the slot lamp
// goroutine works; events are still fed with send.
func runHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// lamp is a presence command as one line: "demo 711 busy 201".
func lamp(c *events.Command) string {
	s := c.Customer + " " + c.Target + " free"
	if c.On {
		s = c.Customer + " " + c.Target + " busy " + c.From.User
	}
	return s
}

// lamps returns the presence commands sent so far, and forgets them.
func (h *harness) lamps() []string {
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	var out []string
	rest := h.bus.cmds[:0]
	for _, c := range h.bus.cmds {
		if c.Op == events.OpPresence {
			out = append(out, lamp(c))
		} else {
			rest = append(rest, c)
		}
	}
	h.bus.cmds = rest
	return out
}

// waitLamps waits until the presence commands sent include all of want.
func (h *harness) waitLamps(want ...string) {
	h.t.Helper()
	var got []string
	waitFor(h.t, "presence "+strings.Join(want, ", "), func() bool {
		got = append(got, h.lamps()...)
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				return false
			}
		}
		return true
	})
}

// slotEvents returns the slot.* events published so far (others are kept).
func (h *harness) slotEvents() []*events.Event {
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	var out []*events.Event
	rest := h.bus.published[:0]
	for _, e := range h.bus.published {
		if strings.HasPrefix(e.Type, "slot.") {
			out = append(out, e)
		} else {
			rest = append(rest, e)
		}
	}
	h.bus.published = rest
	return out
}

func TestSlotLampsAtStart(t *testing.T) {
	h := runHarness(t)
	// Every slot of every customer, free; sixty's rule uses 66.
	h.waitLamps("acme 711 free", "demo 711 free", "demo 712 free")
}

func TestSlotParkAndRetrieveLightAndPublish(t *testing.T) {
	h := runHarness(t)
	h.waitLamps("demo 711 free", "demo 712 free")

	client, john := h.talkAndHold("demo", "client", "333")
	h.send(refer("demo", john, "711"))
	h.waitLamps("demo 711 busy +15559870000")
	var busy *events.Event
	waitFor(t, "slot.busy", func() bool {
		for _, e := range h.slotEvents() {
			busy = e
		}
		return busy != nil
	})
	if busy.Type != events.SlotBusy || busy.Customer != "demo" || busy.Slot != "1" || busy.Call != client ||
		busy.Park == nil || busy.Park.Code != "711" || busy.Park.Parked.User != "+15559870000" || busy.Park.Parker != "333" {
		t.Fatalf("slot.busy: %+v %+v", busy, busy.Park)
	}

	h.take() // the park's own commands

	// A refused transfer into the busy slot changes nothing.
	_, john2 := h.talkAndHold("demo", "client2", "200")
	h.send(refer("demo", john2, "711"))
	time.Sleep(50 * time.Millisecond)
	if got := h.lamps(); len(got) != 0 {
		t.Fatalf("lamps after a refused park: %q", got)
	}

	// Retrieval frees it.
	h.send(inbound("demo", "r2", "201", "711"))
	h.waitLamps("demo 711 free")
	var free *events.Event
	waitFor(t, "slot.free", func() bool {
		for _, e := range h.slotEvents() {
			free = e
		}
		return free != nil
	})
	if free.Type != events.SlotFree || free.Slot != "1" || free.Call != client || free.Park.Parked.User != "+15559870000" {
		t.Fatalf("slot.free: %+v %+v", free, free.Park)
	}
}

// TestSlotLampsFollowReload: a slot added by a dialplan reload gets its
// lamp state, and a removed one is set free once.
func TestSlotLampsFollowReload(t *testing.T) {
	var cur atomic.Pointer[dialplans.Set]
	cur.Store(loadDialplans(t, testDialplans))
	h := harnessOn(t, cur.Load, func(c *Config) { c.Workers, c.SlotResync = 2, 20*time.Millisecond })
	c := h.c
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.waitLamps("demo 711 free", "demo 712 free", "acme 711 free")

	files := maps.Clone(testDialplans)
	files["customers/demo.yaml"] = strings.Replace(files["customers/demo.yaml"], `  - {number: "2"}`, `  - {number: "3"}`, 1)
	cur.Store(loadDialplans(t, files))
	h.waitLamps("demo 713 free", "demo 712 free")
	time.Sleep(100 * time.Millisecond)
	for _, l := range h.lamps() {
		if strings.HasPrefix(l, "demo 711") || strings.HasPrefix(l, "acme") {
			t.Fatalf("unchanged slot sent again: %s", l)
		}
	}
}

func loadDialplans(t testing.TB, files map[string]string) *dialplans.Set {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := dialplans.Load(dir)
	if err != nil {
		t.Fatalf("load dialplans: %v", err)
	}
	return set
}
