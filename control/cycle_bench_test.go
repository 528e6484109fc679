package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// BenchmarkParkRetrieveCycle is the control plane's share of one
// park+retrieve cycle of bench-park: a client calls 333, 333 answers and
// parks the call with its Park key (REFER to *70, a random number), 201
// retrieves it (*71*N), talks, hangs up, and the client's leg ends. Every
// event goes through HandleEvent as the core would send it; commands go to
// a bus that answers at once.
func BenchmarkParkRetrieveCycle(b *testing.B) {
	bus := &fakeBus{}
	set := loadDialplans(b, testDialplans)
	c, err := New(Config{
		Bus:        bus,
		Dialplans:  func() *dialplans.Set { return set },
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
		Workers:    4,
		Rand:       rand.New(rand.NewPCG(7, 7)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	send := func(e *events.Event) { c.HandleEvent(ctx, e) }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		client, r := fmt.Sprintf("n1_c%d", i), fmt.Sprintf("n1_r%d", i)
		send(fromTrunk("demo", client, "333"))
		bus.mu.Lock()
		out := fmt.Sprintf("out-%d", bus.dials)
		bus.mu.Unlock()
		o := outbound("demo", out, client, "333")
		send(o)
		ring := *o
		ring.Type = events.CallRinging
		send(&ring)
		ans := *o
		ans.Type = events.CallAnswered
		send(&ans)
		send(&events.Event{Type: events.CallAnswered, Source: events.SourceCore, Customer: "demo", Call: client, Direction: events.Inbound, Linked: client})
		send(&events.Event{Type: events.CallTransfer, Source: events.SourceCore, Customer: "demo", Call: out, Linked: client,
			Account: "333", Direction: events.Outbound, Target: "*70", ReferID: "ref"})
		var code string
		bus.mu.Lock()
		for _, e := range bus.published {
			if e.Type == events.CallParked && e.Call == client {
				code = e.Park.Code
			}
		}
		bus.published = bus.published[:0]
		bus.cmds = bus.cmds[:0]
		bus.mu.Unlock()
		if code == "" {
			b.Fatal("not parked")
		}
		end := *o
		end.Type = events.CallEnded
		send(&end)
		send(inbound("demo", r, "201", code))
		send(&events.Event{Type: events.CallAnswered, Source: events.SourceCore, Customer: "demo", Call: r, Direction: events.Inbound, Account: "201", Linked: r})
		send(&events.Event{Type: events.CallEnded, Source: events.SourceCore, Customer: "demo", Call: r, Direction: events.Inbound, Account: "201", Linked: r})
		send(&events.Event{Type: events.CallEnded, Source: events.SourceCore, Customer: "demo", Call: client, Direction: events.Inbound, Linked: client})
		bus.mu.Lock()
		bus.published = bus.published[:0]
		bus.cmds = bus.cmds[:0]
		bus.mu.Unlock()
	}
	if n := len(c.State().Channels()); n != 0 {
		b.Fatalf("%d channels left", n)
	}
}
