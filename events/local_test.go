package events

import (
	"context"
	"errors"
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

// TestLocalShortCircuitsThisNode: commands for this node reach its core
// without NATS (no core serves them there), other nodes' go over NATS; a
// core event reaches the control plane at once and NATS as well.
func TestLocalShortCircuitsThisNode(t *testing.T) {
	s := runServer(t)
	bus, err := Connect(s.ClientURL(), "test", nil, nats.InProcessServer(s.Server))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
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
