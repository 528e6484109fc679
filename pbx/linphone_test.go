package pbx_test

import (
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// softphone is a real softphone under test (baresip, linphone) sending a
// steady tone of its own.
type softphone interface {
	Dial(t testing.TB, number string)
	ExpectTone(t testing.TB, freq float64, within time.Duration)
}

// softphoneCalls: sp dials callee, which answers; callee hears sp's tone
// (toneOfSP) and sp hears the 1400 Hz the callee sends back.
func softphoneCalls(t *testing.T, sp softphone, callee *pbxtest.Phone, toneOfSP float64) *pbxtest.Call {
	t.Helper()
	answered := callee.AnswerLater(t.Context())
	sp.Dial(t, callee.Ext)
	c := <-answered
	if c == nil {
		t.Fatalf("%s did not get the softphone's call", callee.Ext)
	}
	c.SendTone(1400)
	c.ExpectTone(t, toneOfSP, 5*time.Second)
	sp.ExpectTone(t, 1400, 5*time.Second)
	return c
}

// TestLinphoneInterop: linphonec, a second real softphone, registers as
// John (333) and calls 201; tones pass both ways. John parks 201 by blind
// transfer to *70333 (a Park key), 201 hears music, and John retrieves it
// with *71 from his own phone; tones pass again (another one to him, so
// that it is this call he hears).
func TestLinphoneInterop(t *testing.T) {
	p := pbxtest.Start(t)
	john := p.Linphone(t, "demo", "333", 1000)
	client := p.Phone(t, "demo", "201")

	cc := softphoneCalls(t, john, client, 1000)

	cc.StopTone()
	john.Transfer(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cc.ExpectAudio(t, time.Second)

	john.Dial(t, "*71")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	// Another tone than before: what John hears now is this call's.
	cc.SendTone(1700)
	cc.ExpectTone(t, 1000, 5*time.Second)
	john.ExpectTone(t, 1700, 5*time.Second)
	john.Hangup(t)
	cc.ExpectEnded(t, 5*time.Second)
}
