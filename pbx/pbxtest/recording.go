package pbxtest

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/callpark/callpark/core/audio"
)

// What a real softphone hears is read from the WAV file it records to
// while the call goes on (baresip's sndfile, linphone's file mode).

// wavTail returns the last d of a 16-bit PCM WAV file that may still be
// growing, as 8 kHz mono samples (the first channel, decimated).
func wavTail(name string, d time.Duration) []int16 {
	data, err := os.ReadFile(name)
	if err != nil || len(data) <= 44 {
		return nil
	}
	rate := int(binary.LittleEndian.Uint32(data[24:28]))
	channels := max(int(binary.LittleEndian.Uint16(data[22:24])), 1)
	pcm := data[44:]
	step := 2 * channels
	if rate > 8000 {
		// Every n-th sample: enough for tones well below 4 kHz.
		step *= rate / 8000
	}
	want := int(d/time.Millisecond) * 8
	n := len(pcm) / step
	first := max(n-want, 0)
	out := make([]int16, 0, n-first)
	for i := first; i < n; i++ {
		out = append(out, int16(binary.LittleEndian.Uint16(pcm[i*step:])))
	}
	return out
}

// writeToneWAV writes d of a sine at freq as an 8 kHz mono WAV file.
func writeToneWAV(t testing.TB, name string, freq float64, d time.Duration) {
	t.Helper()
	pcm := audio.Tone(freq, d, 0.4)
	b := make([]byte, 44+2*len(pcm))
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(pcm)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(pcm)))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// expectTone waits until heard's last 300 ms are freq.
func expectTone(t testing.TB, who string, heard func(time.Duration) []int16, freq float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := heard(300 * time.Millisecond)
		if len(s) >= 2000 {
			if f, ok := audio.DominantTone(s, freq); ok && f == freq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %.0f Hz tone within %s (last %d samples, rms %.0f)", who, freq, within, len(s), audio.RMS(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectSound waits until heard's last 300 ms are neither silence nor one
// of notTones.
func expectSound(t testing.TB, who string, heard func(time.Duration) []int16, within time.Duration, notTones ...float64) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := heard(300 * time.Millisecond)
		if len(s) >= 2000 && !audio.IsSilent(s) {
			if _, ok := audio.DominantTone(s, notTones...); !ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no sound other than %v within %s", who, notTones, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
