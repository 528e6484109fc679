package pbx_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestTranscodePCMUToPCMA: a PCMA-only phone talks to a PCMU-only phone
// through the core, and music reaches a PCMA phone too.
func TestTranscodePCMUToPCMA(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.PhoneWithCodecs(t, "demo", "200", media.CodecAudioAlaw, media.CodecTelephoneEvent8000)
	b := p.PhoneWithCodecs(t, "demo", "201", media.CodecAudioUlaw, media.CodecTelephoneEvent8000)
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)
	hold(t, p, cb)
	ca.ExpectAudio(t, time.Second)
}

// TestDTMFPassesThrough: RFC 4733 digits from one phone reach the other
// and show up as call.dtmf events.
func TestDTMFPassesThrough(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	ca.SendDTMF(t, "15#")
	cb.ExpectDTMF(t, "15#", 3*time.Second)
	p.Events.Wait(t, 3*time.Second, "call.dtmf", func(e *events.Event) bool {
		return e.Type == events.CallDTMF && e.Digit == "#"
	})
}

// TestNoAnswerAndCancel: an unanswered extension gives the caller 480 after
// the customer's dial timeout, and a caller hanging up while it rings
// cancels the callee's INVITE.
func TestNoAnswerAndCancel(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"), "dial_timeout: 30s", "dial_timeout: 2s")
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")

	rang := make(chan *pbxtest.Call, 1)
	go func() { rang <- b.Ringing(t, 5*time.Second) }()
	start := time.Now()
	_, err := a.DialErr(context.Background(), "201")
	if got := pbxtest.StatusOf(err); got != sip.StatusTemporarilyUnavailable {
		t.Fatalf("no answer: %d (%v), want 480", got, err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Fatalf("no answer after %s, want about the 2s dial timeout", d)
	}
	(<-rang).ExpectEnded(t, 3*time.Second) // CANCEL reached the callee

}

// TestSippCancelWhileRinging: a carrier (sipp) gives up while the extension
// rings: the phone's INVITE is cancelled and the carrier gets 487.
func TestSippCancelWhileRinging(t *testing.T) {
	sippBinary(t)
	p := pbxtest.Start(t)
	reception := p.Phone(t, "demo", "200")
	rang := make(chan *pbxtest.Call, 1)
	go func() { rang <- reception.Ringing(t, 5*time.Second) }()
	runSipp(t, "uac_cancel.xml", sippOpts{Remote: p.Addr}, "-s", "+15551230000")
	(<-rang).ExpectEnded(t, 3*time.Second)
	p.Events.Wait(t, 3*time.Second, "dial_failed 487", func(e *events.Event) bool {
		return e.Type == events.CallDialFailed && e.Code == sip.StatusRequestTerminated
	})
	p.Events.Wait(t, 3*time.Second, "caller's leg ended", func(e *events.Event) bool {
		return e.Type == events.CallEnded && e.Direction == events.Inbound
	})
}

// writeWAV writes 8 kHz mono 16-bit PCM as a WAV file.
func writeWAV(t *testing.T, path string, pcm []int16) {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*len(pcm)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*len(pcm)))
	_ = binary.Write(&b, le, pcm)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCustomerMusicDirectory: a customer's own music (here a 440 Hz tone)
// is what its held callers hear.
func TestCustomerMusicDirectory(t *testing.T) {
	music := t.TempDir()
	writeWAV(t, filepath.Join(music, "tone.wav"), audio.Tone(440, 3*time.Second, 0.5))
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"), `music: ""`, fmt.Sprintf("music: %q", music))
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	ca.Hold(t)
	if err := cb.WaitTone(440, 3*time.Second); err != nil {
		t.Errorf("201: %v", err)
		logMusicState(t, p)
		t.FailNow()
	}
}

// logMusicState logs what a music test's failure needs: the core's music
// counters and the goroutines of the music hubs.
func logMusicState(t *testing.T, p *pbxtest.PBX) {
	for _, name := range []string{"callpark_music_batched_packets_total", "callpark_music_late_packets_total", "callpark_music_skipped_packets_total"} {
		t.Logf("%s %v", name, p.Counter(name, nil))
	}
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "core/audio.") || strings.Contains(g, "internal/tick.") {
			t.Logf("%s", g)
		}
	}
}
