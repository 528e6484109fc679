package control

import (
	"testing"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
)

func TestDialExtensionAndAnswer(t *testing.T) {
	h := newHarness(t)
	h.send(inbound("demo", "a", "200", "333"))
	h.expect("dial a 333 from=200 timeout=20000 bridge=true [demo]")
	if ch, d := h.c.State().Channel("a"), h.c.State().DialFor("a"); ch == nil || d == nil || d.Leg != "out-1" ||
		d.Purpose != state.DialExtension || ch.State != state.StateRinging {
		t.Fatalf("inbound leg: %+v, dial %+v", ch, d)
	}
	h.send(outbound("demo", "out-1", "a", "333"))
	h.send(&events.Event{Type: events.CallAnswered, Customer: "demo", Call: "out-1", Direction: events.Outbound, DialedFor: "a"})
	h.expect()
	h.checkChannel("a", state.StateUp, "out-1")
	h.checkChannel("out-1", state.StateUp, "a")
	if d := h.c.State().DialFor("a"); d != nil {
		t.Fatalf("dial still pending after the answer: %+v", d)
	}
}

func TestTrunkDID(t *testing.T) {
	h := newHarness(t)
	h.send(fromTrunk("demo", "a", "+15551230000"))
	h.expect("dial a 333 from=+15559870000 timeout=20000 bridge=true [demo]")
	// Trunks never reach service codes.
	h.send(fromTrunk("demo", "b", "*71333"))
	h.expect("reject b 404")
}

func TestUnknownTargets(t *testing.T) {
	h := newHarness(t)
	h.send(inbound("demo", "a", "200", "5555"))
	h.expect("reject a 404")
	h.send(inbound("nobody", "b", "200", "333"))
	h.expect("reject b 404")
	h.send(inbound("demo", "c", "444", "333"))
	h.expect("reject c 403")
}

func TestDialFailed(t *testing.T) {
	for _, tc := range []struct {
		code int
		want string
	}{{486, "reject a 486"}, {480, "reject a 480"}, {487, "reject a 480"}, {408, "reject a 480"}} {
		h := newHarness(t)
		h.send(inbound("demo", "a", "200", "333"))
		h.take()
		h.send(outbound("demo", "out-1", "a", "333"))
		h.send(&events.Event{Type: events.CallDialFailed, Customer: "demo", Call: "out-1", Direction: events.Outbound, DialedFor: "a", Code: tc.code})
		h.expect(tc.want)
		h.checkGone("out-1")
	}
}

func TestDialFailedAfterAnswerIgnored(t *testing.T) {
	h := newHarness(t)
	client, _ := h.talk("demo", "client", "333")
	// A late failure of some other fork of the same dial: nothing to do.
	h.send(&events.Event{Type: events.CallDialFailed, Customer: "demo", Call: "out-9", DialedFor: client, Code: 486})
	h.expect()
}

func TestHoldResume(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("demo", "client", "333")
	h.send(ev(events.CallResumed, "demo", john))
	h.expect("bridge " + john + " " + client)
	h.checkChannel(john, state.StateUp, client)
	// A second resume changes nothing.
	h.send(ev(events.CallResumed, "demo", john))
	h.expect()
}

func TestHoldBothSides(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("demo", "client", "333")
	h.send(ev(events.CallHeld, "demo", client))
	h.expect("music " + john + " on")
	// John resumes while the client still holds: John keeps the music.
	h.send(ev(events.CallResumed, "demo", john))
	h.expect()
	h.send(ev(events.CallResumed, "demo", client))
	h.expect("bridge " + client + " " + john)
}

func TestEndedHangsUpPeer(t *testing.T) {
	h := newHarness(t)
	client, john := h.talk("demo", "client", "333")
	h.send(ev(events.CallEnded, "demo", john))
	h.expect("hangup " + client)
	h.checkGone(john)
	// The peer's own end then changes nothing more.
	h.send(ev(events.CallEnded, "demo", client))
	h.expect()
	h.checkGone(client)
}

func TestEndedWhileRingingCancels(t *testing.T) {
	h := newHarness(t)
	h.send(inbound("demo", "a", "200", "333"))
	h.take()
	h.send(outbound("demo", "out-1", "a", "333"))
	h.send(ev(events.CallEnded, "demo", "a"))
	h.expect("hangup out-1")
}

func TestRegistrationMirrored(t *testing.T) {
	h := newHarness(t)
	h.send(&events.Event{Type: events.RegistrationUpdated, Customer: "demo", Account: "333",
		Contacts: []events.Contact{{URI: "sip:333@127.0.0.1:5070"}}})
	if r := h.c.State().Registration("demo", "333", ""); r == nil || len(r.Contacts) != 1 {
		t.Fatalf("registration: %+v", r)
	}
}

func TestOwnEventsIgnored(t *testing.T) {
	h := newHarness(t)
	h.send(&events.Event{Type: events.CallParked, Source: events.SourceApp, Customer: "demo", Call: "x", Park: &events.Park{Number: "333"}})
	h.expect()
	if got := h.metric("callpark_control_events_total", "type", events.CallParked); got != 0 {
		t.Fatalf("own event counted: %v", got)
	}
}

// A dial whose command failed (the reply lost, say) may still have made a
// leg: nobody waits for it, so when it shows it is hung up, and its answer
// too, never bridged.
func TestDialNobodyWaitsForIsHungUp(t *testing.T) {
	h := newHarness(t)
	h.bus.setFail(func(c *events.Command) *events.Reply {
		if c.Op == events.OpDial {
			return &events.Reply{V: events.Version, Error: "no reply", Code: events.ErrUnavailable}
		}
		return nil
	})
	h.send(inbound("demo", "a", "200", "333"))
	d := h.lastDial()
	h.expect("dial a 333 from=200 timeout=20000 bridge=true [demo]", "reject a 480")
	if d.Dial == "" || h.c.State().DialCount() != 0 {
		t.Fatalf("dial %q, %d pending", d.Dial, h.c.State().DialCount())
	}
	started := outbound("demo", "late", "a", "333")
	started.Dial = d.Dial
	h.send(started)
	h.expect("hangup late")
	answered := &events.Event{Type: events.CallAnswered, Customer: "demo", Call: "late", Direction: events.Outbound, DialedFor: "a", Dial: d.Dial}
	h.send(answered)
	h.expect("hangup late")
	if ch := h.c.State().Channel("a"); ch != nil && ch.Peer == "late" {
		t.Fatalf("the caller was paired with a leg nobody waited for: %+v", ch)
	}
	// A leg another run of the control plane dialed is left as it is.
	h.bus.setFail(nil)
	other := outbound("demo", "old", "b", "333")
	other.Dial = "dzzzz-1"
	h.send(other)
	h.expect()
}
