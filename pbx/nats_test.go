package pbx_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callpark/callpark/control/api"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

const (
	demoAPIToken = "demo-api-token-0123456789"
	acmeAPIToken = "acme-api-token-9876543210"
)

// customerConn connects as a customer's apps do: user = customer,
// password = its API token, replies on its own inbox prefix. Permission
// violations the server reports arrive on the returned channel.
func customerConn(t *testing.T, p *pbxtest.PBX, customer, token string) (*nats.Conn, <-chan error, error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(p.NATSURL(), nats.UserInfo(customer, token),
		nats.CustomInboxPrefix(api.InboxPrefix(customer)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, errs, err
}

func expectViolation(t *testing.T, errs <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("%s: %v, want a permissions violation", what, err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("%s: no permissions violation reported", what)
	}
}

// TestEmbeddedNATSIsLocked: the embedded server refuses anonymous clients;
// a customer's user reads its own events but not another's, and cannot
// send core commands (hang up another customer's call); tokens follow a
// dialplan reload.
func TestEmbeddedNATSIsLocked(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "acme.yaml"))
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))

	if _, err := nats.Connect(p.NATSURL()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous client: %v, want an authorization violation", err)
	}
	if _, _, err := customerConn(t, p, "acme", demoAPIToken); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("acme with demo's token: %v, want an authorization violation", err)
	}

	demo, _, err := customerConn(t, p, "demo", demoAPIToken)
	if err != nil {
		t.Fatal(err)
	}
	own, err := demo.SubscribeSync(events.CustomerEvents("demo"))
	if err != nil {
		t.Fatal(err)
	}
	acme, acmeErrs, err := customerConn(t, p, "acme", acmeAPIToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.SubscribeSync(events.CustomerEvents("demo")); err != nil {
		t.Fatal(err)
	}
	expectViolation(t, acmeErrs, "acme subscribing to demo's events")
	if _, err := acme.SubscribeSync("callpark.v1.>"); err != nil {
		t.Fatal(err)
	}
	expectViolation(t, acmeErrs, "acme subscribing to everything")

	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)
	msg, err := own.NextMsg(3 * time.Second)
	if err != nil {
		t.Fatalf("demo does not get its own events: %v", err)
	}
	ev, err := events.DecodeEvent(msg.Data)
	if err != nil {
		t.Fatal(err)
	}

	// acme tries to hang up demo's call through the core.
	cmd := events.Command{Op: events.OpHangup, Call: ev.Call}
	data, _ := cmd.Encode()
	if _, err := acme.Request(events.CommandSubject("n1", events.OpHangup), data, time.Second); err == nil {
		t.Fatal("acme's core command was answered")
	}
	expectViolation(t, acmeErrs, "acme sending a core command")
	talk(t, ca, cb)

	// A new token for acme takes effect with the reload: the old one is
	// refused, the new one let in.
	file := filepath.Join(dir, "customers", "acme.yaml")
	b0, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const fresh = "acme-api-token-rotated-2026"
	if err := os.WriteFile(file, []byte(strings.Replace(string(b0), acmeAPIToken, fresh, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, errNew := customerConn(t, p, "acme", fresh)
		_, _, errOld := customerConn(t, p, "acme", acmeAPIToken)
		if errNew == nil && errors.Is(errOld, nats.ErrAuthorization) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reload: new token %v, old token %v", errNew, errOld)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
