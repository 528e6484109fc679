package pbx_test

// A callpark cluster (issue 11): three nodes in this process, each with its
// own SIP port and embedded NATS server, clustered with JetStream. Phones
// register through different nodes; a call parked on one node is retrieved
// through another, lamps light everywhere, and a node that dies takes only
// its own calls with it.

import (
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

func TestClusterParkOnARetrieveOnB(t *testing.T) {
	nodes := pbxtest.StartCluster(t, 3)
	a, b := nodes[0], nodes[1]
	client := a.Phone(t, "demo", "201")
	john := a.Phone(t, "demo", "333")
	doctor := b.Phone(t, "demo", "202")

	// John takes a call on node A, holds it and parks it on 333.
	cc, cj := connect(t, client, john)
	talk(t, cc, cj)
	cj.Hold(t)
	a.Events.Wait(t, 3*time.Second, "call.held", pbxtest.Type(events.CallHeld, "demo"))
	park := john.Dial(t, "*70333")
	e := a.Events.Wait(t, 5*time.Second, "call.parked", parked(events.CallParked, "333"))
	if events.NodeOf(e.Call) != "a" {
		t.Fatalf("parked leg %s, want one of node a", e.Call)
	}
	confirmation(t, park, 3*time.Second)
	cc.ExpectAudio(t, time.Second)

	// The doctor, registered through node B, retrieves it with *71333.
	cc.ResetGap()
	began := time.Now()
	cr := doctor.Dial(t, "*71333")
	cr.SendTone(1400)
	r := b.Events.Wait(t, 5*time.Second, "call.retrieved", parked(events.CallRetrieved, "333"))
	if r.Park.By != "202" {
		t.Fatalf("retrieved by %q, want 202", r.Park.By)
	}
	cc.ExpectTone(t, 1400, 3*time.Second)
	t.Logf("cross-node retrieve: caller hears the doctor %s after the doctor dialed", time.Since(began).Round(time.Millisecond))
	cr.StopTone()
	if gap := cc.MaxGap(); gap > 60*time.Millisecond {
		t.Errorf("the parked caller heard a gap of %s at the handover", gap)
	} else {
		t.Logf("longest gap heard by the caller across the handover: %s", gap)
	}
	talk(t, cc, cr)
	cr.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
	for _, n := range nodes {
		n.WaitNoLegs(t, 5*time.Second)
	}
}
