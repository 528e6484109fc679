package pbx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestForgedInDialogRequestsFromElsewhere: a stranger who has sniffed a
// call's Call-ID and both tags sends REFER (park it), re-INVITE sendonly
// (hold it) and BYE from another address. Each gets 481, no event is
// published, and the two parties keep talking.
func TestForgedInDialogRequestsFromElsewhere(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb) // and every event of the call set-up is in
	callID, ours, theirs := ca.Dialog()
	if callID == "" || ours == "" || theirs == "" {
		t.Fatalf("no dialog identifiers: %q %q %q", callID, ours, theirs)
	}
	before := len(p.Events.All())
	for _, m := range []string{"REFER", "INVITE", "BYE", "INFO", "UPDATE"} {
		forged := pbxtest.ForgeInDialog(m, sippDomain, callID, ours, theirs)
		got := pbxtest.SendHostile(p.Addr, "udp", []pbxtest.Hostile{forged}, 2*time.Second)[0]
		if !strings.Contains(got, " 481 ") {
			t.Errorf("forged %s from another address: %q, want 481", m, got)
		}
	}
	for _, e := range p.Events.All()[before:] {
		t.Errorf("forged requests caused event %s on %s", e.Type, e.Call)
	}
	talk(t, ca, cb)
	// The real phone, from its own address, still holds and transfers.
	ca.Hold(t)
	ca.Unhold(t)
	talk(t, ca, cb)
}
