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
	_, bus, js := streamBus(t, t.TempDir())
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

// TestStreamFlushesInBatchesAndKeepsEventsOverARestart: a new event
// stream writes in batches (async persist mode: events are published
// without an acknowledgement, so nobody waits for the disk), and a
// graceful restart keeps every event that was stored.
func TestStreamFlushesInBatchesAndKeepsEventsOverARestart(t *testing.T) {
	dir := t.TempDir()
	srv, bus, js := streamBus(t, dir)
	if err := bus.EnsureStream(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.CachedInfo().Config.PersistMode; mode != jetstream.AsyncPersistMode {
		t.Fatalf("persist mode %v, want async", mode)
	}
	const events = 500
	for i := range events {
		bus.Publish(&Event{Type: CallStarted, Source: SourceCore, Customer: "demo", Call: fmt.Sprintf("n1-%d", i)})
	}
	waitStored(t, st, events)
	bus.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	_, _, js = streamBus(t, dir)
	if st, err = js.Stream(t.Context(), StreamName); err != nil {
		t.Fatal(err)
	}
	waitStored(t, st, events)
}

// TestStreamOfAnOlderReleaseKeepsItsPersistMode: the server refuses to
// change a stream's persist mode, so a stream made before async persist
// mode is updated in its own mode rather than refused at start.
func TestStreamOfAnOlderReleaseKeepsItsPersistMode(t *testing.T) {
	_, bus, js := streamBus(t, t.TempDir())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: StreamName, Subjects: []string{AllEvents}, Storage: jetstream.FileStorage, MaxAge: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStream(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.PersistMode != jetstream.DefaultPersistMode || cfg.MaxAge != time.Hour {
		t.Fatalf("persist mode %v, max age %v: want the old mode kept and the stream updated to 1h", cfg.PersistMode, cfg.MaxAge)
	}
}

// waitStored waits until stream st holds n messages.
func waitStored(t *testing.T, st jetstream.Stream, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := st.Info(t.Context())
		if err == nil && info.State.Msgs == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %+v (%v), want %d messages", info, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamBus starts a JetStream server storing in dir and connects a bus
// to it; both end with the test (or before, by hand).
func streamBus(t testing.TB, dir string) (*Server, *Bus, jetstream.JetStream) {
	t.Helper()
	srv, err := RunServer(ServerConfig{Port: -1, JetStream: true, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	bus, err := Connect(srv.ClientURL(), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	return srv, bus, js
}
