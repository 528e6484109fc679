package control

import (
	"testing"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

func refer(customer, call, target string) *events.Event {
	return &events.Event{Type: events.CallTransfer, Customer: customer, Call: call, Target: target, ReferID: "ref-1"}
}

func TestReferParkWhileTalking(t *testing.T) {
	h := newHarness(t)
	client, john := h.talk("demo", "client", "333")
	h.send(refer("demo", john, "*70333"))
	// Not on hold yet: music first, then unbridge, so no silence.
	h.expect(
		"music "+client+" on",
		"unbridge "+client,
		"refer_notify "+john+" ref-1 200",
		"hangup "+john,
	)
	e := h.onlyEvent(events.CallParked)
	if e.Park.Number != "333" || e.Park.Kind != "extension" || e.Park.Parker != "333" || e.Park.Code != "*71333" {
		t.Fatalf("park %+v", e.Park)
	}
	h.checkChannel(client, state.StateParked, "")
	h.send(ev(events.CallEnded, "demo", john))
	h.expect()
}

func TestReferParkAfterHold(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("demo", "client", "333")
	h.send(refer("demo", john, "*70"))
	// The client already hears music: it is not restarted.
	h.expect("unbridge "+client, "refer_notify "+john+" ref-1 200", "hangup "+john)
	if e := h.onlyEvent(events.CallParked); e.Park.Kind != "random" {
		t.Fatalf("park %+v", e.Park)
	}
}

func TestReferSlotAndRetrieve(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("demo", "client", "333")
	h.send(refer("demo", john, "711"))
	h.expect("unbridge "+client, "refer_notify "+john+" ref-1 200", "hangup "+john)
	e := h.onlyEvent(events.CallParked)
	if e.Park.Kind != "slot" || e.Park.Number != "1" || e.Park.Code != "711" {
		t.Fatalf("park %+v", e.Park)
	}
	if h.c.State().Parked("demo", "slot:1") == nil {
		t.Fatal("no park in slot 1")
	}
	// Slot 1 is busy now.
	client2, john2 := h.talkAndHold("demo", "client2", "200")
	h.send(refer("demo", john2, "711"))
	h.expect("refer_notify " + john2 + " ref-1 486")
	h.checkChannel(john2, state.StateHeld, client2)
	h.checkChannel(client2, state.StateUp, john2)
	// Dialing 711 retrieves it; *711 is extension 1, not the slot.
	h.refused("demo", "r", "201", "*711", "not-parked")
	h.send(inbound("demo", "r2", "201", "711"))
	h.expect(retrievedBy("r2", client)...)
	if e := h.onlyEvent(events.CallRetrieved); e.Park.Kind != "slot" || e.Park.By != "201" {
		t.Fatalf("retrieved %+v", e.Park)
	}
}

func TestReferBusy(t *testing.T) {
	h := newHarness(t)
	h.parked333("demo")
	client, john := h.talk("demo", "client2", "200")
	h.send(refer("demo", john, "*70333"))
	h.expect("refer_notify " + john + " ref-1 486")
	h.noEvents()
	// Still talking as before.
	h.checkChannel(john, state.StateUp, client)
	h.checkChannel(client, state.StateUp, john)
}

func TestReferForbidden(t *testing.T) {
	h := newHarness(t)
	_, john := h.talk("demo", "client", "202")
	h.send(refer("demo", john, "*70202"))
	h.expect("refer_notify " + john + " ref-1 403")
	client, qjohn := h.talkAndHold("quiet", "qclient", "333")
	h.send(refer("quiet", qjohn, "*70333"))
	h.expect("refer_notify " + qjohn + " ref-1 403")
	// Left as it was: on hold, music still on.
	h.checkChannel(qjohn, state.StateHeld, client)
	h.noEvents()
}

func TestReferBadTargets(t *testing.T) {
	h := newHarness(t)
	client, john := h.talk("demo", "client", "333")
	h.send(refer("demo", john, "8888"))
	h.expect("refer_notify " + john + " ref-1 404")
	h.send(refer("demo", john, "*70555")) // not an account: not allowed
	h.expect("refer_notify " + john + " ref-1 404")
	h.send(refer("demo", john, "201")) // plain blind transfer
	h.expect("refer_notify " + john + " ref-1 501")
	h.checkChannel(john, state.StateUp, client)
	h.checkChannel(client, state.StateUp, john)
	h.noEvents()
}

func TestReferTenantIsolation(t *testing.T) {
	h := newHarness(t)
	h.parked333("demo")
	// acme's slot and 333 are free although demo's 333 is taken.
	_, john := h.talk("acme", "aclient", "333")
	h.send(refer("acme", john, "*70333"))
	got := h.take()
	if len(got) < 3 || got[2] != "refer_notify "+john+" ref-1 200" {
		t.Fatalf("commands %q", got)
	}
	if e := h.onlyEvent(events.CallParked); e.Customer != "acme" {
		t.Fatalf("parked in %s", e.Customer)
	}
}
