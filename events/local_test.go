package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func runServer(t *testing.T) *Server {
	t.Helper()
	s, err := RunServer(ServerConfig{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// inProcessBus is a Bus on a server of its own, reached in-process; both
// close when the test ends.
func inProcessBus(t *testing.T) *Bus {
	t.Helper()
	s := runServer(t)
	bus, err := Connect(s.ClientURL(), "test", nil, nats.InProcessServer(s.Server))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

// TestLocalShortCircuitsThisNode: commands for this node reach its core
// without NATS (no core serves them there), other nodes' go over NATS; a
// core event reaches the control plane at once and NATS as well.
func TestLocalShortCircuitsThisNode(t *testing.T) {
	bus := inProcessBus(t)
	bus.DefaultNode = "a"
	var got []*Command
	l := &Local{Bus: bus, Node: "a", Core: func(_ context.Context, c *Command) *Reply {
		got = append(got, c)
		if c.Op == OpHangup {
			return &Reply{Code: ErrNotFound, Error: "no such call"}
		}
		return &Reply{OK: true, Call: "a_new"}
	}}
	r, err := l.Do(t.Context(), &Command{Op: OpDial, Customer: "demo", Account: "200", Node: "a"})
	if err != nil || r.Call != "a_new" || len(got) != 1 || got[0].V != Version {
		t.Fatalf("local dial: %+v, %v (core got %d)", r, err, len(got))
	}
	var re *ReplyError
	if _, err := l.Do(t.Context(), &Command{Op: OpHangup, Call: "a_x"}); !errors.As(err, &re) || re.Code != ErrNotFound {
		t.Fatalf("local failure: %v", err)
	}
	if _, err := l.Do(t.Context(), &Command{Op: OpHangup}); !errors.As(err, &re) || re.Code != ErrInvalidRequest {
		t.Fatalf("invalid command: %v", err)
	}
	if _, err := l.Do(t.Context(), &Command{Op: OpHangup, Call: "b_x"}); !errors.As(err, &re) || re.Code != ErrUnavailable || len(got) != 2 {
		t.Fatalf("another node's command: %v, core got %d", err, len(got))
	}

	live := make(chan *Event, 4)
	sub, err := bus.SubscribeEvents(CoreEvents, func(e *Event) { live <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var direct []*Event
	if _, err := l.SubscribeEvents(CoreEvents, func(e *Event) { direct = append(direct, e) }); err != nil {
		t.Fatal(err)
	}
	e := &Event{Type: CallStarted, Source: SourceCore, Customer: "demo", Call: "a_1", Node: "a"}
	l.PublishCore(e)
	if len(direct) != 1 || direct[0] != e || e.V != Version || e.Time.IsZero() {
		t.Fatalf("control plane got %d events (%+v)", len(direct), e)
	}
	select {
	case n := <-live:
		if n.Call != "a_1" {
			t.Fatalf("NATS got %+v", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the event did not reach NATS")
	}
	l.PublishCore(&Event{Type: "call.parked", Source: SourceApp, Customer: "demo", Call: "a_1"})
	if len(direct) != 1 {
		t.Fatal("an app event was handed to the control plane")
	}
}

// TestLocalPublishesInOrder: events published by many goroutines reach
// NATS in the order each published them, from Run; what is queued when Run
// stops still goes out.
func TestLocalPublishesInOrder(t *testing.T) {
	bus := inProcessBus(t)
	got := make(chan *Event, 10000)
	sub, err := bus.SubscribeEvents(AllEvents, func(e *Event) { got <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	l := &Local{Bus: bus, Node: "a"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	for !func() bool { l.qmu.Lock(); defer l.qmu.Unlock(); return l.running }() {
		time.Sleep(time.Millisecond)
	}
	const per, publishers = 500, 4
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range per {
				l.Publish(&Event{Type: "call.test", Customer: "demo", Call: fmt.Sprintf("p%d", p), Digit: fmt.Sprint(i)})
			}
		})
	}
	wg.Wait()
	cancel()
	<-done
	next := map[string]int{}
	for range per * publishers {
		select {
		case e := <-got:
			if want := fmt.Sprint(next[e.Call]); e.Digit != want {
				t.Fatalf("publisher %s: event %s after %d", e.Call, e.Digit, next[e.Call])
			}
			next[e.Call]++
		case <-time.After(5 * time.Second):
			t.Fatalf("events lost: %v", next)
		}
	}
}
