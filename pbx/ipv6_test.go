package pbx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestIPv6CallAndPark: callpark on [::1], phones on [::1]: a call, a park
// and a retrieval, tones both ways, music meanwhile.
func TestIPv6CallAndPark(t *testing.T) {
	p := pbxtest.Start(t, func(c *pbx.Config) { c.SIPHost = "::1" })
	client := p.PhoneOn(t, "::1", "demo", "201")
	john := p.PhoneOn(t, "::1", "demo", "333")
	other := p.PhoneOn(t, "::1", "demo", "202")

	cc, cj := connect(t, client, john)
	talk(t, cc, cj)
	cr := parkAndRetrieve(t, p, cc, cj, other)
	if sdp := cr.RemoteSDP(); !strings.Contains(sdp, "IN IP6 ::1") {
		t.Errorf("callpark's answer is not IPv6:\n%s", sdp)
	}
	cr.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
}
