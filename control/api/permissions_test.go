package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

var (
	exampleConf = filepath.Join("..", "..", "examples", "nats-server.conf")
	sampleDir   = filepath.Join("..", "..", "dialplans", "sample")
)

// TestExampleConfigMatchesDialplans: the shipped nats-server.conf has one
// user per customer with an API token, with that token as password and
// exactly the permissions Permissions builds.
func TestExampleConfigMatchesDialplans(t *testing.T) {
	opts, err := server.ProcessConfigFile(exampleConf)
	if err != nil {
		t.Fatal(err)
	}
	set, err := dialplans.Load(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*server.User{}
	for _, u := range opts.Users {
		byName[u.Username] = u
	}
	want := Users(set, "callpark", "callpark-change-me")
	if len(want) != len(opts.Users) {
		t.Fatalf("config has %d users, dialplans give %d", len(opts.Users), len(want))
	}
	for _, w := range want {
		got := byName[w.Username]
		if got == nil {
			t.Fatalf("no user %q in %s", w.Username, exampleConf)
		}
		if got.Password != w.Password {
			t.Errorf("user %s: password is not the customer's api.token", w.Username)
		}
		if (w.Permissions == nil) != (got.Permissions == nil) {
			t.Fatalf("user %s: permissions %+v, want %+v", w.Username, got.Permissions, w.Permissions)
		}
		if w.Permissions == nil {
			continue
		}
		if !slices.Equal(got.Permissions.Publish.Allow, w.Permissions.Publish.Allow) ||
			!slices.Equal(got.Permissions.Subscribe.Allow, w.Permissions.Subscribe.Allow) ||
			got.Permissions.Publish.Deny != nil || got.Permissions.Subscribe.Deny != nil {
			t.Errorf("user %s:\n got publish %v subscribe %v\nwant publish %v subscribe %v", w.Username,
				got.Permissions.Publish.Allow, got.Permissions.Subscribe.Allow,
				w.Permissions.Publish.Allow, w.Permissions.Subscribe.Allow)
		}
	}
}

// violations collects a connection's permission violations.
type violations struct {
	mu   sync.Mutex
	errs []error
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err)
	v.mu.Unlock()
}

// wait returns the first violation that mentions subject, waiting up to 2s.
func (v *violations) wait(t *testing.T, subject string) error {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, err := range v.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				v.mu.Unlock()
				return err
			}
		}
		v.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no permissions violation for %s", subject)
	return nil
}

// TestNATSPermissionsIsolateCustomers runs nats-server with the shipped
// configuration and shows that acme's client reaches its own events, API
// and durable consumer, and nothing of demo's: not even a subscription.
func TestNATSPermissionsIsolateCustomers(t *testing.T) {
	opts, err := server.ProcessConfigFile(exampleConf)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", -1, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	url := ns.ClientURL()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// callparkd's own user: the stream and the API service.
	bus, err := events.Connect("nats://callpark:callpark-change-me@"+url[len("nats://"):], "callparkd", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.EnsureStream(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	set, err := dialplans.Load(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Start(Config{Conn: bus.Conn(), Control: &fakeControl{}, Dialplans: func() *dialplans.Set { return set }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })

	var v violations
	acme, err := nats.Connect(url, nats.UserInfo("acme", "acme-api-token-9876543210"),
		nats.CustomInboxPrefix(InboxPrefix("acme")), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer acme.Close()
	if _, err := nats.Connect(url, nats.UserInfo("acme", "demo-api-token-0123456789")); err == nil {
		t.Fatal("acme connected with demo's token")
	}

	// Own events: allowed and delivered.
	own := make(chan *nats.Msg, 4)
	if _, err := acme.ChanSubscribe(events.CustomerEvents("acme"), own); err != nil {
		t.Fatal(err)
	}
	// Demo's events: the server refuses the subscription.
	theirs := make(chan *nats.Msg, 4)
	if _, err := acme.ChanSubscribe(events.CustomerEvents("demo"), theirs); err != nil {
		t.Fatal(err)
	}
	t.Logf("subscribe to demo's events: %v", v.wait(t, events.CustomerEvents("demo")))
	// Nor can it listen to everybody's replies.
	if _, err := acme.SubscribeSync("_INBOX.>"); err != nil {
		t.Fatal(err)
	}
	v.wait(t, "_INBOX.>")
	if err := acme.Flush(); err != nil {
		t.Fatal(err)
	}
	bus.Publish(&events.Event{Type: events.CallParked, Customer: "acme", Call: "a1"})
	bus.Publish(&events.Event{Type: events.CallParked, Customer: "demo", Call: "d1"})
	select {
	case m := <-own:
		if e, _ := events.DecodeEvent(m.Data); e == nil || e.Call != "a1" {
			t.Fatalf("acme got %s", m.Data)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("acme did not get its own event")
	}
	select {
	case m := <-theirs:
		t.Fatalf("acme got demo's event %s", m.Data)
	case <-time.After(300 * time.Millisecond):
	}

	// API: acme's own subject reaches the service (which refuses: acme has
	// features.api off); demo's subject is refused by the server itself.
	c := &Client{NC: acme, Customer: "acme", Token: "acme-api-token-9876543210"}
	_, err = c.Slots(ctx)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeForbidden {
		t.Fatalf("acme slots: %v, want the service's forbidden", err)
	}
	c.Customer = "demo"
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	_, err = c.Slots(rctx)
	rcancel()
	if err == nil {
		t.Fatal("acme's request on demo's subject was answered")
	}
	v.wait(t, Subject("demo", OpSlots))

	// JetStream: acme's durable consumer filtered on its events works...
	js, err := jetstream.New(acme)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable: "acme", FilterSubject: events.CustomerEvents("acme"), AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("acme's own consumer: %v", err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if e, _ := events.DecodeEvent(m.Data()); e == nil || e.Customer != "acme" {
			t.Fatalf("acme's consumer delivered %s", m.Data())
		}
		m.Ack()
		n++
	}
	if n != 1 {
		t.Fatalf("acme's consumer delivered %d events, want 1", n)
	}
	// ...one over demo's events is refused.
	jctx, jcancel := context.WithTimeout(ctx, time.Second)
	_, err = js.CreateOrUpdateConsumer(jctx, events.StreamName, jetstream.ConsumerConfig{
		Durable: "acme", FilterSubject: events.CustomerEvents("demo"),
	})
	jcancel()
	if err == nil {
		t.Fatal("acme created a consumer over demo's events")
	}
	t.Logf("consumer over demo's events: %v", err)
}
