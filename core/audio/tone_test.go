package audio

import (
	"math/rand/v2"
	"testing"
	"time"
)

func noise(n int, amplitude float64, seed uint64) []int16 {
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]int16, n)
	for i := range out {
		out[i] = int16((r.Float64()*2 - 1) * amplitude * 32767)
	}
	return out
}

func TestToneLengthAndLevel(t *testing.T) {
	tone := Tone(1000, time.Second, 0.5)
	if len(tone) != SampleRate {
		t.Fatalf("%d samples", len(tone))
	}
	// RMS of a sine is peak/√2.
	if rms := RMS(tone); rms < 11500 || rms > 11700 {
		t.Errorf("RMS %v", rms)
	}
	if IsSilent(tone) || !IsSilent(make([]int16, 160)) || !IsSilent(nil) {
		t.Error("IsSilent wrong")
	}
	if got := Tone(1000, time.Second, 7); RMS(got) < 23000 {
		t.Error("amplitude not clamped to full scale")
	}
}

func TestGoertzel(t *testing.T) {
	frame := Tone(1000, FrameDuration, 0.5)
	if p := Goertzel(frame, 1000); p < 0.95 {
		t.Errorf("1000 Hz in a 1000 Hz tone: %v", p)
	}
	for _, f := range []float64{1400, 440, 900, 2000} {
		if p := Goertzel(frame, f); p > 0.05 {
			t.Errorf("%v Hz in a 1000 Hz tone: %v", f, p)
		}
	}
	if p := Goertzel(make([]int16, 160), 1000); p != 0 {
		t.Errorf("silence: %v", p)
	}
	if p := Goertzel(noise(160, 0.5, 1), 1000); p > 0.2 {
		t.Errorf("noise: %v", p)
	}
}

func TestDominantTone(t *testing.T) {
	candidates := []float64{440, 1000, 1400}
	for _, f := range candidates {
		got, ok := DominantTone(Tone(f, 200*time.Millisecond, 0.3), candidates...)
		if !ok || got != f {
			t.Errorf("%v Hz tone: got %v, %v", f, got, ok)
		}
	}
	// Slightly off frequency and quiet (-30 dBFS) still counts.
	if got, ok := DominantTone(Tone(1010, 200*time.Millisecond, 0.03), candidates...); !ok || got != 1000 {
		t.Errorf("1010 Hz: got %v, %v", got, ok)
	}
	for name, pcm := range map[string][]int16{
		"silence":   make([]int16, 1600),
		"noise":     noise(1600, 0.3, 2),
		"1200 Hz":   Tone(1200, 200*time.Millisecond, 0.3),
		"two tones": mix(Tone(1000, 200*time.Millisecond, 0.3), Tone(1400, 200*time.Millisecond, 0.3)),
	} {
		if got, ok := DominantTone(pcm, candidates...); ok {
			t.Errorf("%s detected as %v Hz", name, got)
		}
	}
}

func mix(a, b []int16) []int16 {
	out := make([]int16, len(a))
	for i := range a {
		out[i] = a[i]/2 + b[i]/2
	}
	return out
}

func TestDetector(t *testing.T) {
	d1000, d1400 := NewDetector(1000), NewDetector(1400)
	tone := Tone(1000, 200*time.Millisecond, 0.3)
	// Odd-sized chunks, as a jittery RTP stream might deliver.
	for off := 0; off < len(tone); off += 77 {
		chunk := tone[off:min(off+77, len(tone))]
		d1000.Write(chunk)
		d1400.Write(chunk)
	}
	if !d1000.Present() || d1000.Frames() != 10 || d1000.Hits() != 10 || d1000.Run() != 10 {
		t.Errorf("1000 Hz detector: present %v, %d/%d frames, run %d",
			d1000.Present(), d1000.Hits(), d1000.Frames(), d1000.Run())
	}
	if d1400.Present() || d1400.Hits() != 0 {
		t.Errorf("1400 Hz detector fired on 1000 Hz: %d hits", d1400.Hits())
	}
	d1000.Write(noise(800, 0.3, 3))
	if d1000.Present() || d1000.Run() != 0 {
		t.Error("still present after noise")
	}
	d1000.Write(make([]int16, 800))
	if d1000.Present() {
		t.Error("present in silence")
	}
	d1000.Reset()
	if d1000.Frames() != 0 {
		t.Error("Reset kept state")
	}
}

// A tone that went through a G.711 leg (or was transcoded between laws, as a
// PCMU↔PCMA bridge does) is still detected.
func TestDetectAfterG711(t *testing.T) {
	for _, f := range []float64{1000, 1400} {
		tone := Tone(f, 200*time.Millisecond, 0.3)
		ulaw := EncodeUlaw(tone, nil)
		alaw := make([]byte, len(ulaw))
		UlawToAlaw(ulaw, alaw)
		for name, pcm := range map[string][]int16{
			"μ-law":       DecodeUlaw(ulaw, nil),
			"A-law":       DecodeAlaw(EncodeAlaw(tone, nil), nil),
			"μ-law→A-law": DecodeAlaw(alaw, nil),
		} {
			if got, ok := DominantTone(pcm, 1000, 1400); !ok || got != f {
				t.Errorf("%v Hz via %s: got %v, %v", f, name, got, ok)
			}
			d := NewDetector(f)
			d.Write(pcm)
			if !d.Present() {
				t.Errorf("%v Hz via %s: detector missed it", f, name)
			}
		}
	}
}

func BenchmarkGoertzelFrame(b *testing.B) {
	frame := Tone(1000, FrameDuration, 0.3)
	b.ReportAllocs()
	for b.Loop() {
		Goertzel(frame, 1000)
	}
}
