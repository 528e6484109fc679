package events

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestStreamIndexesNoCallIDs: the event stream keeps every event, but
// under its customer, source and type only: a thousand calls leave as
// many stored subjects as there are kinds of event, and a filter by type
// still finds every event with its call id in the body.
func TestStreamIndexesNoCallIDs(t *testing.T) {
	srv, err := RunServer(ServerConfig{Port: -1, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	bus, err := Connect(srv.ClientURL(), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if err := bus.EnsureStream(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	const calls = 1000
	for i := range calls {
		call := fmt.Sprintf("n1-%d", i)
		bus.Publish(&Event{Type: CallStarted, Source: SourceCore, Customer: "demo", Call: call})
		bus.Publish(&Event{Type: CallParked, Source: SourceApp, Customer: "demo", Call: call})
	}
	if err := bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err = st.Info(t.Context(), jetstream.WithSubjectFilter(AllEvents))
		if err == nil && info.State.Msgs == 2*calls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %+v (%v), want %d events", info.State, err, 2*calls)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := info.State.NumSubjects; n != 2 {
		t.Fatalf("%d stored subjects for %d calls, want 2: %v", n, calls, info.State.Subjects)
	}
	if _, ok := info.State.Subjects[StoredSubject("demo", SourceApp, CallParked)]; !ok {
		t.Fatalf("stored subjects %v, want %s", info.State.Subjects, StoredSubject("demo", SourceApp, CallParked))
	}

	// An app's filter by type, with a wildcard for the call, replays
	// every park with its call.
	cons, err := st.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventsPrefix + ".demo.app.*." + CallParked},
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(calls, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for m := range batch.Messages() {
		e, err := DecodeEvent(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		seen[e.Call] = true
	}
	if len(seen) != calls {
		t.Fatalf("replayed the parks of %d calls, want %d", len(seen), calls)
	}
}
