package pbxtest

// What a call hears and says: test tones sent and detected, and audio
// expected (call.go has the call's signalling).

import (
	"fmt"
	"testing"
	"time"

	"github.com/callpark/callpark/core/audio"
)

func (c *Call) SendTone(freq float64) {
	c.StopTone()
	stop := make(chan struct{})
	done := make(chan struct{})
	c.mu.Lock()
	c.toneStop, c.toneDone = stop, done
	c.mu.Unlock()
	tone := audio.Tone(freq, time.Second, 0.5)
	ulaw := c.codec().Name == "pcmu"
	var enc []byte
	if ulaw {
		enc = audio.EncodeUlaw(tone, nil)
	} else {
		enc = audio.EncodeAlaw(tone, nil)
	}
	w := c.med.RTPPacketWriter
	go func() {
		defer close(done)
		for off := 0; ; off = (off + 160) % len(enc) {
			select {
			case <-stop:
				return
			case <-c.ended:
				return
			default:
			}
			if _, err := w.Write(enc[off : off+160]); err != nil {
				return
			}
		}
	}()
}

func (c *Call) StopTone() {
	c.mu.Lock()
	stop, done := c.toneStop, c.toneDone
	c.toneStop, c.toneDone = nil, nil
	c.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (c *Call) ExpectTone(t testing.TB, freq float64, within time.Duration) {
	t.Helper()
	if err := c.WaitTone(freq, within); err != nil {
		t.Fatalf("%s: %v", c.phone.Ext, err)
	}
}

func (c *Call) WaitTone(freq float64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		var win []int16
		if len(c.pcm) >= 1600 {
			win = append(win, c.pcm[len(c.pcm)-1600:]...)
		}
		c.mu.Unlock()
		if win != nil {
			if f, ok := audio.DominantTone(win, freq, 440, 697, 1000, 1400, 2000); ok && f == freq {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("tone %.0f Hz not heard within %s (%s)", freq, within, c.heard())
}

// heard describes what the call received lately, for a failure message:
// packets, the last one's age, the largest gap, and what the last 200 ms
// sound like.
func (c *Call) heard() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.packets == 0 {
		return "no packets at all"
	}
	s := fmt.Sprintf("%d packets, the last %s ago, largest gap %s", c.packets,
		time.Since(c.lastPkt).Round(time.Millisecond), c.maxGap.Round(time.Millisecond))
	if len(c.pcm) < 1600 {
		return s
	}
	win := c.pcm[len(c.pcm)-1600:]
	f, ok := audio.DominantTone(win, 440, 697, 1000, 1400, 2000)
	return fmt.Sprintf("%s; the last 200 ms: rms %.0f, strongest of the test tones %.0f Hz (dominant: %v)", s, audio.RMS(win), f, ok)
}

func (c *Call) ExpectAudio(t testing.TB, d time.Duration) {
	t.Helper()
	mark := c.Mark()
	n := c.PacketsDuring(d)
	want := int(d / (20 * time.Millisecond))
	if n < want*8/10 {
		t.Fatalf("%s: %d packets in %s, want about %d", c.phone.Ext, n, d, want)
	}
	_, pcm := c.Received()
	if audio.IsSilent(pcm[mark:]) {
		t.Fatalf("%s: received audio is silent (rms %.0f)", c.phone.Ext, audio.RMS(pcm[mark:]))
	}
}
