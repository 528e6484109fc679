package pbxtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/callpark/callpark/core/audio"
)

// musicWindow is how much of the stream WaitMusic judges at a time.
const musicWindow = 500 * time.Millisecond

// testTones are the frequencies tests send; music on hold never lets one
// of them dominate (sounds/README.md).
var testTones = []float64{440, 697, 1000, 1400, 2000}

// ExpectMusic waits up to within for music on hold on the call: half a
// second with a full stream of packets, neither silent nor a test tone
// (the party that just held is no longer heard).
func (c *Call) ExpectMusic(t testing.TB, within time.Duration) {
	t.Helper()
	if err := c.WaitMusic(within); err != nil {
		t.Fatalf("%s: %v", c.phone.Ext, err)
	}
}

// WaitMusic is ExpectMusic returning an error.
func (c *Call) WaitMusic(within time.Duration) error {
	deadline := time.Now().Add(within)
	want := int(musicWindow/(20*time.Millisecond)) * 8 / 10
	for {
		mark := c.Mark()
		n := c.PacketsDuring(musicWindow)
		_, pcm := c.Received()
		seg := pcm[mark:]
		tone, isTone := audio.DominantTone(seg, testTones...)
		switch {
		case n >= want && !audio.IsSilent(seg) && !isTone:
			return nil
		case time.Now().After(deadline):
			what := fmt.Sprintf("%d packets in %s (want %d)", n, musicWindow, want)
			if isTone {
				what = fmt.Sprintf("a %.0f Hz tone", tone)
			} else if audio.IsSilent(seg) {
				what = fmt.Sprintf("silence (rms %.0f)", audio.RMS(seg))
			}
			return fmt.Errorf("no music on hold within %s: last heard %s", within, what)
		}
	}
}
