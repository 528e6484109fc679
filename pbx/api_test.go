package pbx_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callpark/callpark/control/api"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// Tokens of the sample dialplans (api.token).
const (
	demoToken = "demo-api-token-0123456789"
	acmeToken = "acme-api-token-9876543210"
)

// apiDialplans is the sample with 201 allowed to take calls through the
// API (call_control), as 200, the receptionist, is.
func apiDialplans(t *testing.T) string {
	return writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		`password: "secret201"`, `password: "secret201"
    permissions: [park, retrieve, call_control]`)
}

// apiClient connects to p's NATS and talks to customer's API with token.
func apiClient(t *testing.T, p *pbxtest.PBX, customer, token string) *api.Client {
	t.Helper()
	nc, err := nats.Connect(p.NATSURL(), p.ServiceAuth())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &api.Client{NC: nc, Customer: customer, Token: token}
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// upCall waits until the control plane sees account's call up (as a
// console would, listing calls) and returns its id.
// parkByAPI parks, as the console does, the call of req.Account once it
// is up.
func parkByAPI(t *testing.T, cl *api.Client, req api.ParkRequest) {
	t.Helper()
	upCall(t, cl, req.Account)
	if _, err := cl.Park(ctx5(t), req); err != nil {
		t.Fatalf("park %+v: %v", req, err)
	}
}

func upCall(t *testing.T, cl *api.Client, account string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := cl.Calls(ctx5(t), account)
		if err == nil {
			for _, c := range r.Calls {
				if c.State == "up" {
					return c.CallID
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call of %s up: %+v %v", account, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantCode asserts that err is an API error with code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s: err = %v, want API error %s", what, err, code)
	}
	if ae.Code != code || ae.Message == "" {
		t.Fatalf("%s: got %s %q, want %s", what, ae.Code, ae.Message, code)
	}
	t.Logf("%s: %s: %s", what, ae.Code, ae.Message)
}

func TestAPIParkIntoSlotAndRetrieveToAccount(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialplans(apiDialplans(t)))
	caller := p.Phone(t, "demo", "202")
	reception := p.Phone(t, "demo", "200")
	sales := p.Phone(t, "demo", "201")
	cl := apiClient(t, p, "demo", demoToken)

	cc, cr := connect(t, caller, reception)
	upCall(t, cl, "200")
	talk(t, cc, cr)

	// The console lists the receptionist's calls...
	calls, err := cl.Calls(ctx5(t), "200")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls.Calls) != 1 || calls.Calls[0].State != "up" || calls.Calls[0].Party.User != "202" {
		t.Fatalf("calls of 200 = %+v", calls.Calls)
	}
	// ...and parks the current one on slot 1 with one click.
	pr, err := cl.Park(ctx5(t), api.ParkRequest{Account: "200", Slot: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Parked.Kind != "slot" || pr.Parked.Number != "1" || pr.Parked.Code != "711" || pr.Parked.Caller.User != "202" || pr.Parked.Parker != "200" {
		t.Fatalf("park reply = %+v", pr.Parked)
	}
	e := p.Events.Next(t, events.CallParked, pbxtest.Park("1"))
	if e.Park.Kind != "slot" || e.Customer != "demo" {
		t.Fatalf("call.parked = %+v", e.Park)
	}
	// The slot goes busy for lamps and consoles.
	p.Events.Wait(t, 5*time.Second, "slot.busy", func(e *events.Event) bool {
		return e.Type == events.SlotBusy && e.Customer == "demo" && e.Slot == "1"
	})
	// The receptionist is disconnected; the caller hears music.
	cr.ExpectEnded(t, 5*time.Second)
	cc.ExpectAudio(t, time.Second)

	slots, err := cl.Slots(ctx5(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(slots.Slots) != 2 || !slots.Slots[0].Busy || slots.Slots[0].Slot != "1" || slots.Slots[0].Parked.Caller.User != "202" || slots.Slots[1].Busy {
		t.Fatalf("slots = %+v", slots.Slots)
	}
	list, err := cl.Parked(ctx5(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Parked) != 1 || list.Parked[0].Age < 0 || list.Parked[0].Due == nil || list.Parked[0].CallID == "" {
		t.Fatalf("parked = %+v", list.Parked)
	}
	if d := time.Until(*list.Parked[0].Due); d < 100*time.Second || d > 121*time.Second {
		t.Fatalf("due in %s, want about 120s (demo's auto_retrieve.after)", d)
	}

	// One tap retrieves it to 201: 201's phone rings, answers, they talk.
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- sales.Answer(t, 5*time.Second) }()
	rr, err := cl.Retrieve(ctx5(t), api.RetrieveRequest{Slot: "1", To: "201"})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status != "ringing" || rr.CallID == "" || rr.Parked.Number != "1" {
		t.Fatalf("retrieve reply = %+v", rr)
	}
	cs := <-answered
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("1"))
	if r.Park.By != "201" {
		t.Fatalf("retrieved by %q, want 201", r.Park.By)
	}
	talk(t, cc, cs)
	if list, _ := cl.Parked(ctx5(t)); len(list.Parked) != 0 {
		t.Fatalf("still parked: %+v", list.Parked)
	}
	if n := apiRequests(t, p, "park", "ok"); n != 1 {
		t.Errorf("callpark_api_requests_total{park,ok} = %v", n)
	}
	cs.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
}

func TestAPIRetrieveNotAnsweredGoesBack(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		`password: "secret201"`, `password: "secret201"
    permissions: [park, retrieve, call_control]`,
		`dial_timeout: 30s`, `dial_timeout: 2s`)
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	caller := p.Phone(t, "demo", "202")
	reception := p.Phone(t, "demo", "200")
	sales := p.Phone(t, "demo", "201")
	other := p.Phone(t, "demo", "333")
	cl := apiClient(t, p, "demo", demoToken)

	cc, _ := connect(t, caller, reception)
	parkByAPI(t, cl, api.ParkRequest{Account: "200", Extension: "333"})
	if _, err := cl.Retrieve(ctx5(t), api.RetrieveRequest{Extension: "333", To: "201"}); err != nil {
		t.Fatal(err)
	}
	sales.Ringing(t, 5*time.Second) // rings, nobody answers
	// While it rings the call is taken: a phone dialing *71333 gets nothing
	// (exactly one retrieval wins).
	if list, _ := cl.Parked(ctx5(t)); len(list.Parked) != 0 {
		t.Fatalf("listed while ringing: %+v", list.Parked)
	}
	_, err := cl.Retrieve(ctx5(t), api.RetrieveRequest{Extension: "333", To: "201"})
	wantCode(t, "second retrieve while ringing", err, api.CodeNotParked)
	cc.ExpectAudio(t, 500*time.Millisecond) // music all along
	// After the dial timeout it is back on 333, and a phone can take it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := cl.Parked(ctx5(t))
		if err == nil && len(list.Parked) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call not back in parking: %+v %v", list, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	co := other.Dial(t, "*71")
	talk(t, cc, co)
}

// apiRequests reads callpark_api_requests_total{endpoint,code}.
func apiRequests(t *testing.T, p *pbxtest.PBX, endpoint, code string) float64 {
	t.Helper()
	mfs, err := p.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "callpark_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["endpoint"] == endpoint && l["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestAPIErrors(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialplans(apiDialplans(t)))
	caller := p.Phone(t, "demo", "202")
	caller2 := p.Phone(t, "demo", "333")
	reception := p.Phone(t, "demo", "200")
	warehouse := p.Phone(t, "demo", "999")
	cl := apiClient(t, p, "demo", demoToken)
	ctx := ctx5(t)

	// forbidden: no token, a wrong one, another customer's, a customer
	// without the API, an account without call_control.
	_, err := apiClient(t, p, "demo", "").Slots(ctx)
	wantCode(t, "no token", err, api.CodeForbidden)
	_, err = apiClient(t, p, "demo", "demo-api-token-wrong-one").Slots(ctx)
	wantCode(t, "wrong token", err, api.CodeForbidden)
	acmeOnDemo := &api.Client{NC: cl.NC, Customer: "demo", Token: acmeToken}
	_, err = acmeOnDemo.Park(ctx, api.ParkRequest{Account: "200", Slot: "1"})
	wantCode(t, "acme's token on demo's subject", err, api.CodeForbidden)
	_, err = apiClient(t, p, "acme", acmeToken).Slots(ctx)
	wantCode(t, "acme has features.api off", err, api.CodeForbidden)
	_, err = apiClient(t, p, "nosuch", demoToken).Slots(ctx)
	wantCode(t, "unknown customer", err, api.CodeForbidden)
	cw, _ := connect(t, caller2, warehouse)
	upCall(t, cl, "999")
	_, err = cl.Park(ctx, api.ParkRequest{Account: "999", Slot: "1"})
	wantCode(t, "999 lacks call_control", err, api.CodeForbidden)
	cw.Hangup()

	// invalid_request: malformed JSON, unknown fields, missing or
	// conflicting fields. The service answers the next request as usual.
	for _, bad := range []struct{ op, body string }{
		{api.OpPark, `{"account": "200", "slot": `},
		{api.OpPark, `[1, 2, 3]`},
		{api.OpPark, `{"account": 200, "slot": "1"}`},
		{api.OpPark, `{"account": "200", "slott": "1"}`},
		{api.OpPark, `{"account": "200"}`},
		{api.OpPark, `{"slot": "1"}`},
		{api.OpPark, `{"account": "200", "slot": "1", "extension": "333"}`},
		{api.OpPark, `{"account": "200", "slot": "1; DROP"}`},
		{api.OpRetrieve, `{"slot": "1"}`},
		{api.OpRetrieve, `{"to": "201"}`},
		{api.OpRetrieve, `{"slot": "1", "to": "201"} {}`},
		{api.OpCalls, `{}`},
		{api.OpSlots, "\x00\xff"},
	} {
		err := cl.Do(ctx, bad.op, []byte(bad.body), nil)
		wantCode(t, bad.op+" "+bad.body, err, api.CodeInvalidRequest)
	}
	if _, err := cl.Slots(ctx); err != nil {
		t.Fatalf("service gone after bad requests: %v", err)
	}

	// not_found: an account with no call, an unknown account, a slot or a
	// call that does not exist.
	_, err = cl.Park(ctx, api.ParkRequest{Account: "200", Slot: "1"})
	wantCode(t, "no call", err, api.CodeNotFound)
	_, err = cl.Park(ctx, api.ParkRequest{Account: "444", Slot: "1"})
	wantCode(t, "unknown account", err, api.CodeNotFound)
	_, err = cl.Calls(ctx, "444")
	wantCode(t, "calls of unknown account", err, api.CodeNotFound)
	cc, cr := connect(t, caller, reception)
	upCall(t, cl, "200")
	_, err = cl.Park(ctx, api.ParkRequest{Account: "200", Slot: "9"})
	wantCode(t, "unknown slot", err, api.CodeNotFound)
	_, err = cl.Park(ctx, api.ParkRequest{Account: "200", CallID: "nosuchcall", Slot: "1"})
	wantCode(t, "unknown call", err, api.CodeNotFound)
	_, err = cl.Retrieve(ctx, api.RetrieveRequest{Slot: "1", To: "444"})
	wantCode(t, "retrieve to unknown account", err, api.CodeNotFound)
	// Nothing of that was changed: the call still talks.
	talk(t, cc, cr)

	// not_parked: nothing on slot 2.
	_, err = cl.Retrieve(ctx, api.RetrieveRequest{Slot: "2", To: "201"})
	wantCode(t, "retrieve from a free slot", err, api.CodeNotParked)

	// slot_busy: a second call for a taken slot stays with the receptionist.
	calls, err := cl.Calls(ctx, "200")
	if err != nil || len(calls.Calls) != 1 {
		t.Fatalf("calls: %+v %v", calls, err)
	}
	if _, err := cl.Park(ctx, api.ParkRequest{Account: "200", CallID: calls.Calls[0].CallID, Slot: "1"}); err != nil {
		t.Fatal(err)
	}
	cr.ExpectEnded(t, 5*time.Second)
	cc2, cr2 := connect(t, caller2, reception)
	upCall(t, cl, "200")
	_, err = cl.Park(ctx, api.ParkRequest{Account: "200", Slot: "1"})
	wantCode(t, "slot 1 taken", err, api.CodeSlotBusy)
	talk(t, cc2, cr2)
	// retrieve to 999 (no call_control) is refused and leaves the call parked.
	_, err = cl.Retrieve(ctx, api.RetrieveRequest{Slot: "1", To: "999"})
	wantCode(t, "retrieve to 999", err, api.CodeForbidden)
	if s, _ := cl.Slots(ctx); !s.Slots[0].Busy {
		t.Fatalf("slot 1 lost its call: %+v", s)
	}
	cc.ExpectAudio(t, 500*time.Millisecond)

	for _, c := range []string{api.CodeForbidden, api.CodeInvalidRequest, api.CodeNotFound, api.CodeNotParked, api.CodeSlotBusy} {
		n := 0.0
		for _, op := range api.Ops {
			n += apiRequests(t, p, op, c)
		}
		if n == 0 {
			t.Errorf("no callpark_api_requests_total with code %s", c)
		}
	}
}

// TestEventReplayDurable: a console with a durable JetStream consumer
// filtered on its customer goes offline, two calls are parked, and when it
// comes back with the same durable name it gets both call.parked events.
func TestEventReplayDurable(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialplans(apiDialplans(t)))
	caller := p.Phone(t, "demo", "202")
	caller2 := p.Phone(t, "demo", "333")
	reception := p.Phone(t, "demo", "200")
	acme1 := p.Phone(t, "acme", "201")
	acme2 := p.Phone(t, "acme", "200")
	cl := apiClient(t, p, "demo", demoToken)
	const durable = "demo-console"

	// fetch reads (and acks) the durable consumer's messages until done
	// says so; it returns the events and the last stream sequence.
	fetch := func(cons jetstream.Consumer, done func([]*events.Event) bool) ([]*events.Event, uint64) {
		t.Helper()
		var got []*events.Event
		var last uint64
		deadline := time.Now().Add(10 * time.Second)
		for !done(got) {
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s: got %d events, not what was expected", durable, len(got))
			}
			batch, err := cons.Fetch(20, jetstream.FetchMaxWait(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				e, err := events.DecodeEvent(m.Data())
				if err != nil {
					t.Fatal(err)
				}
				if e.Customer != "demo" {
					t.Fatalf("filtered consumer got %s's event %s", e.Customer, e.Type)
				}
				md, _ := m.Metadata()
				last = md.Sequence.Stream
				got = append(got, e)
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
			}
		}
		return got, last
	}
	has := func(typ string, n int) func([]*events.Event) bool {
		return func(es []*events.Event) bool {
			k := 0
			for _, e := range es {
				if e.Type == typ {
					k++
				}
			}
			return k >= n
		}
	}

	// Online: the console's durable consumer follows demo's events.
	nc, err := nats.Connect(p.NATSURL(), p.ServiceAuth())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx5(t), events.StreamName, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: events.CustomerEvents("demo"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := connect(t, caller, reception)
	upCall(t, cl, "200")
	_, seen := fetch(cons, has(events.CallAnswered, 2))
	// The console goes away.
	nc.Close()

	// Meanwhile two calls are parked (and acme, filtered out, talks).
	if _, err := cl.Park(ctx5(t), api.ParkRequest{Account: "200", Slot: "1"}); err != nil {
		t.Fatal(err)
	}
	cc2, _ := connect(t, caller2, reception)
	parkByAPI(t, cl, api.ParkRequest{Account: "200", Slot: "2"})
	connect(t, acme1, acme2)
	p.Events.Next(t, events.CallParked, pbxtest.Park("2"))

	// Back with the same durable name: both parks are delivered, nothing
	// that was acked before comes again.
	nc, err = nats.Connect(p.NATSURL(), p.ServiceAuth())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err = js.Consumer(ctx5(t), events.StreamName, durable)
	if err != nil {
		t.Fatalf("durable consumer gone: %v", err)
	}
	got, _ := fetch(cons, has(events.CallParked, 2))
	var slots []string
	for _, e := range got {
		if e.Type == events.CallParked {
			slots = append(slots, e.Park.Number)
		}
	}
	if len(slots) != 2 || slots[0] != "1" || slots[1] != "2" {
		t.Fatalf("replayed parks on %v, want [1 2]", slots)
	}
	info, err := cons.Info(ctx5(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Stream <= seen {
		t.Fatalf("delivered up to %d, before %d", info.Delivered.Stream, seen)
	}
	t.Logf("replayed %d events missed while offline, both parks among them", len(got))
	cc.ExpectAudio(t, 300*time.Millisecond)
	cc2.ExpectAudio(t, 300*time.Millisecond)
}

// TestAPIRetrieveToURI: a web app retrieves a parked call to its own SIP
// URI (here a plain user agent that is no account).
func TestAPIRetrieveToURI(t *testing.T) {
	p := pbxtest.Start(t)
	caller := p.Phone(t, "demo", "202")
	reception := p.Phone(t, "demo", "200")
	app := pbxtest.NewRawPhone(t, p.Addr, "console", "127.0.0.1")
	cl := apiClient(t, p, "demo", demoToken)

	cc, _ := connect(t, caller, reception)
	parkByAPI(t, cl, api.ParkRequest{Account: "200", Random: true})
	e := p.Events.Next(t, events.CallParked, pbxtest.Park(""))
	if e.Park.Kind != "random" {
		t.Fatalf("parked %+v", e.Park)
	}
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- app.Answer(t, 5*time.Second) }()
	uri := fmt.Sprintf("sip:console@127.0.0.1:%d", app.Port)
	if _, err := cl.Retrieve(ctx5(t), api.RetrieveRequest{Random: e.Park.Number, To: uri}); err != nil {
		t.Fatal(err)
	}
	ca := <-answered
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park(e.Park.Number))
	if r.Park.By != uri {
		t.Fatalf("retrieved by %q", r.Park.By)
	}
	talk(t, cc, ca)
	_, err := cl.Retrieve(ctx5(t), api.RetrieveRequest{Slot: "1", To: "http://example.com"})
	wantCode(t, "retrieve to a non-SIP URI", err, api.CodeInvalidRequest)
}

// TestAPIParkedCallReturnsToTheAppAccount is point 4: a call the console
// parked for the receptionist, left alone, rings the receptionist's phones
// (the account it was parked for) when its slot's time is up.
func TestAPIParkedCallReturnsToTheAppAccount(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"), "after: 120s", "after: 1s")
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	caller := p.Phone(t, "demo", "202")
	reception := p.Phone(t, "demo", "200")
	cl := apiClient(t, p, "demo", demoToken)

	cc, cr := connect(t, caller, reception)
	parkByAPI(t, cl, api.ParkRequest{Account: "200", Extension: "333"})
	cr.ExpectEnded(t, 5*time.Second)
	cc.ExpectAudio(t, 500*time.Millisecond)
	ring := reception.Answer(t, 5*time.Second)
	e := p.Events.Next(t, events.CallReturned, pbxtest.Park("333"))
	if e.Park.Parker != "200" {
		t.Fatalf("returned to parker %q, want 200", e.Park.Parker)
	}
	talk(t, cc, ring)
}
