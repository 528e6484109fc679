package pbx_test

import (
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestParkedCallerIsNotRead: Mary, parked, keeps sending audio as phones
// do. Nobody listens to a parked caller: the kernel drops her audio at her
// leg's socket instead of waking the core for each packet. The digit she
// presses is still reported, and once Bob retrieves her they hear each
// other.
func TestParkedCallerIsNotRead(t *testing.T) {
	p := pbxtest.Start(t)
	mary := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	bob := p.Phone(t, "demo", "202")

	cm, cj := connect(t, mary, john)
	talk(t, cm, cj)
	cj.Park(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cm.ExpectMusic(t, 3*time.Second)

	leg := cm.MediaPort()
	before := pbxtest.UDPDrops(t, leg)
	cm.SendTone(1000)
	deadline := time.Now().Add(3 * time.Second)
	for pbxtest.UDPDrops(t, leg) < before+50 {
		if time.Now().After(deadline) {
			t.Fatalf("parked leg's socket dropped %d of Mary's packets in 3 s, want 50 or more",
				pbxtest.UDPDrops(t, leg)-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cm.StopTone()
	cm.SendDTMF(t, "7")
	p.Events.Wait(t, 3*time.Second, "call.dtmf 7 from the parked caller", func(e *events.Event) bool {
		return e.Type == events.CallDTMF && e.Digit == "7"
	})

	cb := bob.Dial(t, "*71333")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	talk(t, cm, cb)
	heard := pbxtest.UDPDrops(t, leg)
	talk(t, cm, cb)
	if d := pbxtest.UDPDrops(t, leg) - heard; d != 0 {
		t.Errorf("retrieved leg's socket dropped %d packets while talking", d)
	}
}
