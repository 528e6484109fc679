package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewChecksConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dp := func() *dialplans.Set { return nil }
	for _, cfg := range []Config{
		{Dialplans: dp, Log: log},
		{Bus: &fakeBus{}, Log: log},
		{Bus: &fakeBus{}, Dialplans: dp},
		{Bus: &fakeBus{}, Dialplans: dp, Log: log, Workers: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// run runs h's Control until ctx ends and returns, once Control is
// subscribed, the handler the bus delivers events to and Run's result.
func (h *harness) run(ctx context.Context) (deliver func(*events.Event), done <-chan error) {
	h.t.Helper()
	result := make(chan error, 1)
	go func() { result <- h.c.Run(ctx) }()
	waitFor(h.t, "subscription", func() bool {
		h.bus.mu.Lock()
		defer h.bus.mu.Unlock()
		deliver = h.bus.handler
		return deliver != nil
	})
	return deliver, result
}

// TestRunDispatch feeds events through the subscription: every leg's
// events are handled in order, own events are dropped, and Run returns when
// its context ends.
func TestRunDispatch(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	deliver, done := h.run(ctx)

	// 50 calls, each: started, then ended before answer.
	const calls = 50
	var wg sync.WaitGroup
	for i := range calls {
		id := "c" + string(rune('A'+i))
		wg.Go(func() {
			deliver(inbound("demo", id, "200", "333"))
			deliver(outbound("demo", id+"-out", id, "333"))
			deliver(&events.Event{Type: events.CallParked, Source: events.SourceApp, Customer: "demo", Call: id})
		})
	}
	wg.Wait()
	waitFor(t, "dials", func() bool {
		return h.metric("callpark_control_events_total", "type", events.CallStarted) == 2*calls
	})
	if got := h.metric("callpark_control_events_total", "type", events.CallParked); got != 0 {
		t.Fatalf("own events handled: %v", got)
	}
	dials := 0
	for _, c := range h.take() {
		if len(c) > 4 && c[:4] == "dial" {
			dials++
		}
	}
	if dials != calls {
		t.Fatalf("%d dials, want %d", dials, calls)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestRunConversationInOrder: the events of a call's two legs are handled
// in the order they happened. The client's phone holds right after the
// extension answered; handled before the answer, the hold would find the
// extension still ringing and it would hear no music.
func TestRunConversationInOrder(t *testing.T) {
	h := newHarness(t)
	h.bus.outByCall = true
	deliver, _ := h.run(t.Context())

	const calls = 100
	for i := range calls {
		client := fmt.Sprintf("c%d", i)
		out := client + "-out"
		deliver(fromTrunk("demo", client, "333"))
		waitFor(t, "dial", func() bool { d := h.c.State().DialFor(client); return d != nil && d.Leg == out })
		deliver(outbound("demo", out, client, "333"))
		deliver(&events.Event{Type: events.CallAnswered, Source: events.SourceCore, Customer: "demo", Call: out, Linked: client, Direction: events.Outbound, DialedFor: client})
		deliver(&events.Event{Type: events.CallAnswered, Source: events.SourceCore, Customer: "demo", Call: client, Linked: client, Direction: events.Inbound, Peer: out})
		deliver(&events.Event{Type: events.CallHeld, Source: events.SourceCore, Customer: "demo", Call: client, Linked: client})
	}
	want := map[string]bool{}
	for i := range calls {
		want[fmt.Sprintf("music c%d-out on", i)] = true
	}
	waitFor(t, "every hold handled", func() bool {
		return h.metric("callpark_control_events_total", "type", events.CallHeld) == calls
	})
	for _, c := range h.take() {
		delete(want, c)
	}
	if len(want) > 0 {
		t.Fatalf("%d of %d held calls got no music", len(want), calls)
	}
}

// TestRunOverNATS runs Control against an embedded NATS server and a fake
// core answering commands: *events.Bus is a Bus.
func TestRunOverNATS(t *testing.T) {
	srv, err := events.RunServer(events.ServerConfig{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus, err := events.Connect(srv.ClientURL(), "control-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var ops []string
	go bus.ServeCommands(ctx, "n1", func(_ context.Context, c *events.Command) *events.Reply {
		mu.Lock()
		ops = append(ops, describe(c))
		mu.Unlock()
		if c.Op == events.OpDial {
			// Like the core: the new leg rings, then John answers.
			go func() {
				bus.Publish(outbound("demo", "john", c.Call, c.Account))
				bus.Publish(&events.Event{Type: events.CallAnswered, Source: events.SourceCore, Customer: "demo", Call: "john", Linked: c.Call, Account: c.Account, Direction: events.Outbound, DialedFor: c.Call})
			}()
			return &events.Reply{OK: true, Call: "john"}
		}
		return &events.Reply{OK: true}
	})
	parked := make(chan *events.Event, 4)
	if _, err := bus.SubscribeEvents(events.EventsPrefix+".demo.app.*."+events.CallParked, func(e *events.Event) { parked <- e }); err != nil {
		t.Fatal(err)
	}
	bus.Conn().Flush()

	set := loadTestDialplans(t)
	c, err := New(Config{Bus: bus, Dialplans: func() *dialplans.Set { return set }, Log: log, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Wait for the subscription: a registration event shows up in state.
	waitFor(t, "control subscription", func() bool {
		bus.Publish(&events.Event{Type: events.RegistrationUpdated, Source: events.SourceCore, Customer: "demo", Call: "reg", Account: "999",
			Contacts: []events.Contact{{URI: "sip:999@127.0.0.1"}}})
		time.Sleep(10 * time.Millisecond)
		return c.State().Registration("demo", "999", "") != nil
	})

	// A client calls John (the fake core dials and John answers), John
	// holds and dials *70333.
	bus.Publish(fromTrunk("demo", "client", "333"))
	waitFor(t, "bridge", func() bool {
		ch := c.State().Channel("john")
		return ch != nil && ch.Peer == "client" && c.State().Channel("client").Peer == "john"
	})
	bus.Publish(ev(events.CallHeld, "demo", "john"))
	waitFor(t, "hold", func() bool { return c.State().HeldChannel("demo", "333") != nil })
	bus.Publish(inbound("demo", "j2", "333", "*70333"))
	select {
	case e := <-parked:
		if e.Park == nil || e.Park.Number != "333" || e.Call != "client" {
			t.Fatalf("call.parked %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no call.parked on NATS")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []string{"music client on", "unbridge client", "answer j2"}
	for _, w := range want {
		found := false
		for _, o := range ops {
			found = found || o == w
		}
		if !found {
			t.Errorf("core never got %q; got %q", w, ops)
		}
	}
}
