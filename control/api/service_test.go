package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// fakeControl answers with canned results and records what it was asked.
type fakeControl struct {
	parkErr error
	parks   []string
	panic   bool
}

func (f *fakeControl) ParkCall(_ context.Context, customer, account, callID string, at control.Spot) (*state.Parked, error) {
	if f.panic {
		panic("boom")
	}
	f.parks = append(f.parks, fmt.Sprintf("%s/%s/%s/%s", customer, account, callID, at))
	if f.parkErr != nil {
		return nil, f.parkErr
	}
	return &state.Parked{Customer: customer, Channel: "c1", Kind: at.Kind, Number: at.Number, Code: "71" + at.Number, Parker: account, Since: time.Now()}, nil
}

func (f *fakeControl) RetrieveTo(context.Context, string, control.Spot, control.Dest) (*control.Retrieval, error) {
	return nil, fmt.Errorf("%w: nothing parked", control.ErrNotParked)
}

func (f *fakeControl) Slots(string) ([]control.SlotState, error)    { return nil, nil }
func (f *fakeControl) Parked(string) ([]*state.Parked, error)       { return nil, nil }
func (f *fakeControl) Calls(string, string) ([]control.Call, error) { return nil, nil }
func (f *fakeControl) CountAPIRequest(string, string)               {}

func startService(t *testing.T, fc *fakeControl) *nats.Conn {
	t.Helper()
	ns, err := events.RunServer(events.ServerConfig{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	set, err := dialplans.Load(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Start(Config{Conn: nc, Control: fc, Dialplans: func() *dialplans.Set { return set },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	info := svc.Info()
	if info.Name != Name || len(info.Endpoints) != len(Ops) || info.Endpoints[0].Subject != "callpark.v1.api.*.park" {
		t.Fatalf("service info = %+v", info)
	}
	return nc
}

func TestServiceTokenInBodyOrHeader(t *testing.T) {
	fc := &fakeControl{}
	nc := startService(t, fc)
	ctx := context.Background()
	c := &Client{NC: nc, Customer: "demo", Token: "demo-api-token-0123456789"}
	r, err := c.Park(ctx, ParkRequest{Account: "200", Slot: "1"})
	if err != nil || r.Parked.Code != "711" {
		t.Fatalf("park: %+v %v", r, err)
	}
	// The token may come in the body instead of the header.
	c.Token = ""
	if err := c.Do(ctx, OpPark, []byte(`{"token":"demo-api-token-0123456789","account":"200","random":true}`), nil); err != nil {
		t.Fatal(err)
	}
	if len(fc.parks) != 2 || fc.parks[1] != "demo/200//random " {
		t.Fatalf("parks = %q", fc.parks)
	}
	// A token in the body of another customer is no better.
	err = c.Do(ctx, OpPark, []byte(`{"token":"acme-api-token-9876543210","account":"200","slot":"1"}`), nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeForbidden {
		t.Fatalf("acme token in body: %v", err)
	}
}

func TestServiceErrorsAreStructured(t *testing.T) {
	fc := &fakeControl{parkErr: fmt.Errorf("%w: a call is already parked on slot 1", control.ErrBusy)}
	nc := startService(t, fc)
	m := nats.NewMsg(Subject("demo", OpPark))
	m.Header.Set(TokenHeader, "demo-api-token-0123456789")
	m.Data = []byte(`{"account":"200","slot":"1"}`)
	res, err := nc.RequestMsg(m, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("Nats-Service-Error-Code") != CodeSlotBusy || string(res.Data) != `{"error":{"code":"slot_busy","message":"a call is already parked on slot 1"}}` {
		t.Fatalf("reply %v %s", res.Header, res.Data)
	}
	// A handler panic is an internal error, and the service lives on.
	fc.panic = true
	c := &Client{NC: nc, Customer: "demo", Token: "demo-api-token-0123456789"}
	_, err = c.Park(context.Background(), ParkRequest{Account: "200", Slot: "1"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeInternal {
		t.Fatalf("panic: %v", err)
	}
	_, err = c.Retrieve(context.Background(), RetrieveRequest{Slot: "1", To: "201"})
	if !errors.As(err, &ae) || ae.Code != CodeNotParked {
		t.Fatalf("retrieve: %v", err)
	}
}
