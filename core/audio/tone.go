package audio

// Tone generation and detection, for prompts, ringback and, above all, tests
// that check which audio reached which phone (as livekit's audiotest does).

import (
	"math"
	"time"
)

// Detection thresholds.
const (
	// SilenceRMS is the RMS (in sample units) below which audio counts as
	// silence: about -50 dBFS, above G.711 idle noise and comfort noise.
	SilenceRMS = 100
	// DominantShare is the share of a frame's energy that must lie at a
	// frequency for that frequency to dominate it. A clean tone, even after
	// G.711, scores above 0.95; two equal tones score 0.5 each and must not
	// count, hence a margin above one half.
	DominantShare = 0.6
	// DetectFrames is how many consecutive dominated 20 ms frames make a
	// Detector report a tone as present.
	DetectFrames = 3
)

// Tone returns dur of a sine wave at freq Hz, sampled at 8 kHz, with peak
// amplitude as a fraction of full scale (clamped to 0…1).
func Tone(freq float64, dur time.Duration, amplitude float64) []int16 {
	amplitude = math.Max(0, math.Min(1, amplitude))
	n := int(dur * SampleRate / time.Second)
	out := make([]int16, n)
	w := 2 * math.Pi * freq / SampleRate
	for i := range out {
		out[i] = int16(math.Round(amplitude * math.MaxInt16 * math.Sin(w*float64(i))))
	}
	return out
}

// Goertzel returns the share of the samples' energy that lies at freq Hz:
// about 1 for a pure tone at freq, about 2/len(samples) for white noise, 0 for
// digital silence. The analysis bandwidth is about 8000/len(samples) Hz (50 Hz
// for a 20 ms frame).
func Goertzel(samples []int16, freq float64) float64 {
	power, energy := goertzel(samples, freq)
	if energy == 0 {
		return 0
	}
	return math.Min(1, 2*power/(float64(len(samples))*energy))
}

// goertzel returns |X(freq)|² and Σx² of samples.
func goertzel(samples []int16, freq float64) (power, energy float64) {
	coeff := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2 float64
	for _, v := range samples {
		x := float64(v)
		s1, s2 = x+coeff*s1-s2, s1
		energy += x * x
	}
	return s1*s1 + s2*s2 - coeff*s1*s2, energy
}

// RMS returns the root mean square of samples, in sample units (0…32768).
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, v := range samples {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// IsSilent reports whether samples are below SilenceRMS.
func IsSilent(samples []int16) bool {
	return RMS(samples) < SilenceRMS
}

// dominates reports whether freq holds at least DominantShare of a
// non-silent frame's energy.
func dominates(frame []int16, freq float64) bool {
	return !IsSilent(frame) && Goertzel(frame, freq) >= DominantShare
}

// DominantTone returns which of the candidate frequencies dominates samples,
// analysed in 20 ms frames so that packet boundaries, phase jumps and a few
// Hz of error do not matter: a candidate's share is the energy-weighted mean
// of its per-frame Goertzel shares. ok is false for silence, noise, speech,
// music, or a tone that is not among the candidates.
func DominantTone(samples []int16, candidates ...float64) (freq float64, ok bool) {
	if IsSilent(samples) {
		return 0, false
	}
	best, bestShare := 0.0, 0.0
	for _, c := range candidates {
		var weighted, total float64
		for off := 0; off < len(samples); off += FrameSamples {
			frame := samples[off:min(off+FrameSamples, len(samples))]
			power, energy := goertzel(frame, c)
			weighted += 2 * power / float64(len(frame))
			total += energy
		}
		if share := weighted / total; share > bestShare {
			best, bestShare = c, share
		}
	}
	return best, bestShare >= DominantShare
}

// Detector watches a stream of PCM for one frequency. Feed it with Write in
// any chunk size; it analyses each complete 20 ms frame. A Detector is not
// safe for concurrent use.
type Detector struct {
	freq   float64
	buf    [FrameSamples]int16
	n      int // samples buffered in buf
	run    int // consecutive dominated frames ending with the latest
	hits   int // dominated frames in total
	frames int // frames analysed in total
}

// NewDetector returns a Detector for freq Hz.
func NewDetector(freq float64) *Detector {
	return &Detector{freq: freq}
}

// Write analyses pcm, buffering any incomplete trailing frame.
func (d *Detector) Write(pcm []int16) {
	for len(pcm) > 0 {
		c := copy(d.buf[d.n:], pcm)
		d.n += c
		pcm = pcm[c:]
		if d.n < FrameSamples {
			return
		}
		d.n = 0
		d.frames++
		if dominates(d.buf[:], d.freq) {
			d.run++
			d.hits++
		} else {
			d.run = 0
		}
	}
}

// Present reports whether the frequency dominated the last DetectFrames
// frames (60 ms).
func (d *Detector) Present() bool { return d.run >= DetectFrames }

// Run returns the number of consecutive frames, ending with the latest, that
// the frequency dominated.
func (d *Detector) Run() int { return d.run }

// Hits returns how many frames the frequency dominated in total.
func (d *Detector) Hits() int { return d.hits }

// Frames returns how many frames were analysed in total.
func (d *Detector) Frames() int { return d.frames }

// Reset forgets everything written so far.
func (d *Detector) Reset() { *d = Detector{freq: d.freq} }
