package control

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

// parked333 parks the client of John (333) on *70333 in customer demo and
// returns the client's leg.
func (h *harness) parked333(customer string) (client, john string) {
	h.t.Helper()
	client, john = h.talkAndHold(customer, "client-"+customer, "333")
	h.send(inbound(customer, "j2-"+customer, "333", "*70333"))
	h.take()
	h.events()
	return client, john
}

func TestParkByHoldAndDial(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("demo", "client", "333")
	h.send(inbound("demo", "j2", "333", "*70333"))
	h.expect(
		"unbridge "+client,
		"answer j2",
		"play j2 parked,star,digit-7,digit-1,digit-3,digit-3,digit-3 +hangup",
		"hangup "+john,
	)
	e := h.onlyEvent(events.CallParked)
	want := events.Park{Number: "333", Kind: "extension", Code: "*71333", Parker: "333",
		Parked: events.Party{User: "+15559870000", Display: "Client"}, Since: e.Park.Since}
	if *e.Park != want || e.Customer != "demo" || e.Call != client || e.Park.Since.IsZero() {
		t.Fatalf("call.parked = %+v %+v", e, e.Park)
	}
	p := h.c.State().Parked("demo", "333")
	if p == nil || p.Channel != client {
		t.Fatalf("parked record: %+v", p)
	}
	h.checkChannel(client, state.StateParked, "")

	// John's held leg ends: the parked client is not hung up, and its music
	// is never touched.
	h.send(ev(events.CallEnded, "demo", john))
	h.send(ev(events.CallEnded, "demo", "j2"))
	h.expect()
	h.noEvents()
	if h.c.State().Parked("demo", "333") == nil {
		t.Fatal("park lost when the parker hung up")
	}
	if got := h.metric("callpark_parks_total", "customer", "demo"); got != 1 {
		t.Fatalf("parks_total = %v", got)
	}
	if got := h.metric("callpark_parked_calls"); got != 1 {
		t.Fatalf("parked_calls = %v", got)
	}
}

func TestParkAnyExtension(t *testing.T) {
	h := newHarness(t)
	client, _ := h.talkAndHold("demo", "client", "333")
	h.send(inbound("demo", "j2", "333", "*70999"))
	got := h.take()
	if len(got) != 4 || got[0] != "unbridge "+client || got[2] != "play j2 parked,star,digit-7,digit-1,digit-9,digit-9,digit-9 +hangup" {
		t.Fatalf("commands %q", got)
	}
	if e := h.onlyEvent(events.CallParked); e.Park.Number != "999" || e.Park.Code != "*71999" {
		t.Fatalf("park %+v", e.Park)
	}
}

func TestParkInvalidNumber(t *testing.T) {
	h := newHarness(t)
	h.talkAndHold("demo", "client", "333")
	// 555 is not an account and the rule does not allow any number.
	h.refused("demo", "j2", "333", "*70555", "invalid-number")
	h.noEvents()
}

func TestParkNumberBusy(t *testing.T) {
	h := newHarness(t)
	h.parked333("demo")
	// 200 talks to another client, holds and tries 333 too.
	client2, john2 := h.talkAndHold("demo", "client2", "200")
	h.refused("demo", "k2", "200", "*70333", "number-busy")
	h.noEvents()
	// Nothing lost: still on hold with music, with 200.
	h.checkChannel(john2, state.StateHeld, client2)
	h.checkChannel(client2, state.StateUp, john2)
	if p := h.c.State().ParkedByChannel(client2); p != nil {
		t.Fatalf("client2 parked: %+v", p)
	}
	// 200 can still take the call back.
	h.send(ev(events.CallResumed, "demo", john2))
	h.expect("bridge " + john2 + " " + client2)
}

func TestParkNoHeldCall(t *testing.T) {
	h := newHarness(t)
	h.talk("demo", "client", "333") // talking, not held
	h.refused("demo", "j2", "333", "*70333", "no-held-call")
	h.noEvents()
}

func TestParkNotPermitted(t *testing.T) {
	h := newHarness(t)
	// 202 has no permissions.
	h.talkAndHold("demo", "client", "202")
	h.refused("demo", "j2", "202", "*70202", "not-permitted")
	// quiet has parking off.
	h.talkAndHold("quiet", "qclient", "333")
	h.refused("quiet", "q2", "333", "*70333", "not-permitted")
	// acme's 201 may retrieve but not park.
	h.talkAndHold("acme", "aclient", "201")
	h.refused("acme", "a2", "201", "*70", "not-permitted")
	h.noEvents()
}

func TestParkRandomAndRetrieve(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("demo", "client", "333")
	h.send(inbound("demo", "j2", "333", "*70"))
	e := h.onlyEvent(events.CallParked)
	n := e.Park.Number
	if e.Park.Kind != "random" || len(n) != 4 || e.Park.Code != "*71*"+n {
		t.Fatalf("park %+v", e.Park)
	}
	want := append([]string{"parked", "star", "digit-7", "digit-1", "star"}, spell(n)...)
	h.expect("unbridge "+client, "answer j2", "play j2 "+strings.Join(want, ",")+" +hangup", "hangup "+john)
	if h.c.State().Parked("demo", "*"+n) == nil {
		t.Fatal("no park under *" + n)
	}
	// *71N (no star) is an extension park, not the random one.
	h.refused("demo", "r0", "201", "*71"+n, "not-parked")
	h.send(inbound("demo", "r1", "201", "*71*"+n))
	h.expect(retrievedBy("r1", client)...)
	if e := h.onlyEvent(events.CallRetrieved); e.Park.Number != n || e.Park.By != "201" || e.Park.Kind != "random" {
		t.Fatalf("retrieved %+v", e.Park)
	}
}

func TestRandomNumbersNotReused(t *testing.T) {
	h := newHarness(t)
	seen := map[string]bool{}
	for i := range 20 {
		id := string(rune('a' + i))
		client, _ := h.talkAndHold("demo", "client"+id, "333")
		h.send(inbound("demo", "j"+id, "333", "*70"))
		h.take()
		e := h.onlyEvent(events.CallParked)
		if seen[e.Park.Number] {
			t.Fatalf("random number %s reused", e.Park.Number)
		}
		seen[e.Park.Number] = true
		h.checkChannel(client, state.StateParked, "")
	}
}

func TestRetrieveOther(t *testing.T) {
	h := newHarness(t)
	client, _ := h.parked333("demo")
	h.send(inbound("demo", "r", "201", "*71333"))
	h.expect(retrievedBy("r", client)...)
	e := h.onlyEvent(events.CallRetrieved)
	if e.Park.By != "201" || e.Park.Number != "333" || e.Park.Parker != "333" || e.Call != client {
		t.Fatalf("retrieved %+v %+v", e, e.Park)
	}
	h.checkChannel("r", state.StateUp, client)
	h.checkChannel(client, state.StateUp, "r")
	if h.c.State().Parked("demo", "333") != nil {
		t.Fatal("park still there")
	}
	if got := h.metric("callpark_retrieves_total", "customer", "demo"); got != 1 {
		t.Fatalf("retrieves_total = %v", got)
	}
	if got := h.metric("callpark_park_duration_seconds"); got != 1 {
		t.Fatalf("park_duration_seconds count = %v", got)
	}
	// Now they talk: when r hangs up, the client is hung up too.
	h.send(ev(events.CallEnded, "demo", "r"))
	h.expect("hangup " + client)
}

func TestRetrieveOwn(t *testing.T) {
	h := newHarness(t)
	client, _ := h.parked333("demo")
	h.send(inbound("demo", "r", "333", "*71"))
	h.expect(retrievedBy("r", client)...)
	h.onlyEvent(events.CallRetrieved)
}

func TestRetrieveNotParked(t *testing.T) {
	h := newHarness(t)
	h.refused("demo", "r", "201", "*71333", "not-parked")
	h.refused("demo", "r2", "201", "*71", "not-parked")
	h.noEvents()
}

func TestRetrieveNotPermitted(t *testing.T) {
	h := newHarness(t)
	h.parked333("demo")
	h.refused("demo", "r", "202", "*71333", "not-permitted")
	if h.c.State().Parked("demo", "333") == nil {
		t.Fatal("refused retrieve removed the park")
	}
}

func TestRetrieveParkedLegVanished(t *testing.T) {
	h := newHarness(t)
	client, _ := h.parked333("demo")
	h.bus.setFail(func(c *events.Command) *events.Reply {
		if c.Op == events.OpBridge {
			return &events.Reply{Code: events.ErrNotFound, Error: "no such call"}
		}
		return nil
	})
	h.send(inbound("demo", "r", "201", "*71333"))
	h.expect("answer r", "bridge r "+client, "play r not-parked +hangup")
	h.noEvents()
	// Its call.ended follows: the park goes away as abandoned.
	h.send(ev(events.CallEnded, "demo", client))
	h.onlyEvent(events.CallAbandoned)
	if h.c.State().Parked("demo", "333") != nil {
		t.Fatal("park of a gone leg kept")
	}
}

func TestAbandoned(t *testing.T) {
	h := newHarness(t)
	client, _ := h.parked333("demo")
	h.send(ev(events.CallEnded, "demo", client))
	h.expect()
	e := h.onlyEvent(events.CallAbandoned)
	if e.Park.Number != "333" || e.Customer != "demo" {
		t.Fatalf("abandoned %+v", e.Park)
	}
	if h.c.State().Parked("demo", "333") != nil || h.metric("callpark_parked_calls") != 0 {
		t.Fatal("number not freed")
	}
	if got := h.metric("callpark_abandons_total", "customer", "demo"); got != 1 {
		t.Fatalf("abandons_total = %v", got)
	}
	// The number is free at once.
	h.talkAndHold("demo", "client2", "333")
	h.send(inbound("demo", "j3", "333", "*70333"))
	h.onlyEvent(events.CallParked)
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t)
	demoClient, _ := h.parked333("demo")
	// acme's 333 sees nothing under 333.
	h.refused("acme", "r", "333", "*71333", "not-parked")
	h.refused("acme", "r2", "333", "*71", "not-parked")
	// acme parks on its own 333 while demo's is taken.
	acmeClient, _ := h.parked333("acme")
	if p := h.c.State().Parked("acme", "333"); p == nil || p.Channel != acmeClient {
		t.Fatalf("acme park %+v", p)
	}
	// Each retrieves its own.
	h.send(inbound("acme", "r3", "200", "*71333"))
	h.expect(retrievedBy("r3", acmeClient)...)
	h.send(inbound("demo", "r4", "200", "*71333"))
	h.expect(retrievedBy("r4", demoClient)...)
	for _, e := range h.events() {
		if e.Type == events.CallRetrieved && e.Customer == "acme" && e.Call != acmeClient {
			t.Fatalf("acme retrieved %s", e.Call)
		}
	}
	// acme's held leg is never found from demo.
	h.talkAndHold("acme", "aclient2", "200")
	h.refused("demo", "j5", "200", "*70200", "no-held-call")
}

func TestConcurrentRetrieveOneWinner(t *testing.T) {
	h := newHarness(t)
	for round := range 100 {
		h.c.State().UpsertChannel(&state.Channel{ID: "p", Customer: "demo", State: state.StateParked, Direction: events.Inbound})
		if err := h.c.State().Park(&state.Parked{Customer: "demo", Key: "333", Channel: "p", Kind: state.KindExtension, Number: "333"}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var wg sync.WaitGroup
		for _, r := range []string{"r1", "r2"} {
			wg.Go(func() { h.send(inbound("demo", r, "201", "*71333")) })
		}
		wg.Wait()
		got := h.take()
		bridges := 0
		for _, c := range got {
			if strings.HasPrefix(c, "bridge ") {
				bridges++
			}
		}
		notParked := slices.IndexFunc(got, func(s string) bool { return strings.Contains(s, "not-parked") })
		if bridges != 1 || notParked < 0 {
			t.Fatalf("round %d: %q", round, got)
		}
		if n := len(h.events()); n != 1 {
			t.Fatalf("round %d: %d events", round, n)
		}
		for _, id := range []string{"p", "r1", "r2"} {
			h.c.State().DeleteChannel(id)
		}
	}
}
