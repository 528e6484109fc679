package pbx_test

import (
	"context"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestDeadContactNeverDelaysTheAnswer: 201 has a live phone and one that
// was unplugged without unregistering. The live one answers and the caller
// is connected at once (not after the dead fork's 32 s Timer B); the dead
// contact, having let its fork go unanswered, is probed and unregistered.
func TestDeadContactNeverDelaysTheAnswer(t *testing.T) {
	p := pbxtest.Start(t)
	caller := p.Phone(t, "demo", "200")
	live := p.Phone(t, "demo", "201")
	dead := p.Phone(t, "demo", "201")
	if n := len(p.Core().Registrar().Contacts("demo", "201")); n != 2 {
		t.Fatalf("%d contacts for 201, want 2", n)
	}
	dead.Unplug()

	type answer struct {
		call *pbxtest.Call
		at   time.Time
	}
	answered := make(chan answer, 1)
	go func() {
		c := live.Ringing(t, 5*time.Second)
		at := time.Now()
		c.Answer(t)
		answered <- answer{c, at}
	}()
	call := caller.Dial(t, "201")
	connected := time.Now()
	a := <-answered
	if d := connected.Sub(a.at); d > time.Second {
		t.Fatalf("caller connected %v after the answer, want within 1s", d)
	}
	talk(t, call, a.call)

	deadline := time.Now().Add(15 * time.Second)
	for len(p.Core().Registrar().Contacts("demo", "201")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the dead contact is still registered: %d contacts", len(p.Core().Registrar().Contacts("demo", "201")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUnpluggedParkerNeverDelaysThePark: John presses Park and his phone
// drops off the network straight away, so the final NOTIFY and the BYE
// that end his part go unanswered. The call is parked at once all the same
// (the core does not hold the control plane's commands up waiting for a
// phone's answers: a phone that never answers would stall every call
// handled after it), the caller hears music, and another phone retrieves
// it.
func TestUnpluggedParkerNeverDelaysThePark(t *testing.T) {
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	other := p.Phone(t, "demo", "202")

	cc, cj := connect(t, client, john)
	go func() { _, _ = cj.TransferErr(context.Background(), "*70333") }() // its NOTIFYs never reach John
	p.Events.Next(t, events.CallTransfer)
	john.Unplug()
	unplugged := time.Now()
	p.Events.NextWithin(t, 10*time.Second, events.CallParked, pbxtest.Park("333"))
	if d := time.Since(unplugged); d > 2*time.Second {
		t.Fatalf("parked %v after the REFER, want within 2s", d.Round(time.Millisecond))
	}
	cc.ExpectAudio(t, time.Second)
	talk(t, cc, other.Dial(t, "*71333"))
}

// TestUnansweredByeEndsTheDialog: Mary calls John, John's phone drops off
// the network, Mary hangs up. The core's BYE to John is never answered;
// RFC 3261 15.1.1 ends the session and the dialog all the same: his leg's
// media sockets are closed (or kept as a spare pair) and the SIP engine keeps no dialog for it (it
// kept both forever, one per phone lost mid-call).
func TestUnansweredByeEndsTheDialog(t *testing.T) {
	p := pbxtest.Start(t)
	mary := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	cm, cj := connect(t, mary, john)
	talk(t, cm, cj)
	legPort := cj.MediaPort() // the core's RTP port on John's leg
	if n := p.Counter("callpark_rtp_legs", nil); n != 2 {
		t.Fatalf("%v legs with RTP sockets during the call, want 2", n)
	}
	john.Unplug()
	cm.Hangup()
	p.WaitNoLegs(t, 10*time.Second)

	deadline := time.Now().Add(15 * time.Second)
	for {
		dialogs := p.Counter("callpark_core_sip_dialogs", nil)
		legs := p.Counter("callpark_rtp_legs", nil)
		// His sockets are closed, or rest as a spare pair that drops what
		// arrives until a new leg takes it (core/rtp/spares.go).
		open := pbxtest.UDPBound(legPort) && p.Counter("callpark_rtp_spare_pairs", nil) == 0
		if dialogs == 0 && legs == 0 && !open {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after John's BYE went unanswered: %v SIP dialogs kept, %v legs with RTP sockets, his leg's RTP port open and not a spare: %v", dialogs, legs, open)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
