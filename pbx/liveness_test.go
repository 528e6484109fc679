package pbx_test

import (
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestVanishedCallerIsNotParkedForever: a parked caller whose phone answers
// the in-dialog keep-alive stays parked with music; once the phone is
// unplugged (no BYE, ever) the keep-alive finds it gone and the parked call
// is abandoned, with an event, instead of holding a leg and a slot forever.
func TestVanishedCallerIsNotParkedForever(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialogKeepAlive(300*time.Millisecond))
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")

	cc, _ := parkOwn(t, p, client, john) // REFER *70333

	// Several keep-alive rounds: the live caller stays parked, with music.
	time.Sleep(1500 * time.Millisecond)
	cc.ExpectAudio(t, 500*time.Millisecond)
	if n := p.Counter("callpark_lost_legs_total", nil); n != 0 {
		t.Fatalf("%v live legs taken for lost", n)
	}

	client.Unplug()
	e := p.Events.NextWithin(t, 15*time.Second, events.CallAbandoned, pbxtest.Park("333"))
	if e.Customer != "demo" {
		t.Fatalf("call.abandoned = %+v", e)
	}
	if n := p.Counter("callpark_lost_legs_total", nil); n != 1 {
		t.Fatalf("callpark_lost_legs_total = %v, want 1", n)
	}
	p.WaitNoLegs(t, 5*time.Second)
}
