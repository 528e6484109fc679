package pbx_test

import (
	"testing"
	"time"

	"github.com/callpark/callpark/core/rawudp"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestParkedMusicIsBatched: where the core may open a raw socket, music on
// hold goes out in batches through it, and the parked phone hears it as
// from its leg's own RTP port, without gaps; the retrieval then bridges
// audio both ways through the legs' sockets as before.
func TestParkedMusicIsBatched(t *testing.T) {
	if c, err := rawudp.Open(1); err != nil {
		t.Skip("no raw socket here, music is not batched:", err)
	} else {
		c.Close()
	}
	p := pbxtest.Start(t)
	t.Cleanup(func() {
		if t.Failed() { // once, under the whole suite's load, 0 packets in the second after the park
			logMusicState(t, p)
		}
	})
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")

	cc, _ := parkOwn(t, p, client, john) // REFER *70333
	before := p.Counter("callpark_music_batched_packets_total", nil)
	cc.ResetGap()
	cc.ExpectAudio(t, time.Second)
	if gap := cc.MaxGap(); gap > 60*time.Millisecond {
		t.Errorf("music gap of %s", gap)
	}
	if n := p.Counter("callpark_music_batched_packets_total", nil) - before; n < 40 {
		t.Fatalf("%v music packets batched in a second of music, want about 50", n)
	}
	if n := p.Counter("callpark_rtp_write_errors_total", nil); n != 0 {
		t.Fatalf("%v RTP write errors", n)
	}

	cr := john.Dial(t, "*71")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	talk(t, cc, cr)
}
