package audio

import (
	"testing"

	"github.com/zaf/g711"
)

// Every 16-bit sample and every code must agree with github.com/zaf/g711,
// an independent implementation of the ITU-T G.191 reference.
func TestG711MatchesReference(t *testing.T) {
	for i := -32768; i < 32768; i++ {
		s := int16(i)
		if got, want := ulawEncode(s), g711.EncodeUlawFrame(s); got != want {
			t.Fatalf("μ-law encode %d = %#x, want %#x", s, got, want)
		}
		if got, want := alawEncode(s), g711.EncodeAlawFrame(s); got != want {
			t.Fatalf("A-law encode %d = %#x, want %#x", s, got, want)
		}
	}
	for i := range 256 {
		b := byte(i)
		if got, want := ulawToPCM[b], g711.DecodeUlawFrame(b); got != want {
			t.Errorf("μ-law decode %#x = %d, want %d", b, got, want)
		}
		if got, want := alawToPCM[b], g711.DecodeAlawFrame(b); got != want {
			t.Errorf("A-law decode %#x = %d, want %d", b, got, want)
		}
		if got, want := ulawToAlaw[b], g711.Ulaw2AlawFrame(b); got != want {
			t.Errorf("μ-law→A-law %#x = %#x, want %#x", b, got, want)
		}
		if got, want := alawToUlaw[b], g711.Alaw2UlawFrame(b); got != want {
			t.Errorf("A-law→μ-law %#x = %#x, want %#x", b, got, want)
		}
	}
}

func TestG711Silence(t *testing.T) {
	zero := make([]int16, 4)
	for _, b := range EncodeUlaw(zero, nil) {
		if b != UlawSilence {
			t.Fatalf("μ-law of 0 = %#x", b)
		}
	}
	for _, b := range EncodeAlaw(zero, nil) {
		if b != AlawSilence {
			t.Fatalf("A-law of 0 = %#x", b)
		}
	}
	if DecodeUlaw([]byte{UlawSilence}, nil)[0] != 0 {
		t.Error("μ-law silence does not decode to 0")
	}
	if v := DecodeAlaw([]byte{AlawSilence}, nil)[0]; v != 8 {
		t.Errorf("A-law silence decodes to %d, want 8 (the smallest A-law step)", v)
	}
	if v := DecodeUlaw([]byte{0x00}, nil)[0]; v != -32124 {
		t.Errorf("μ-law 0x00 = %d, want full scale", v)
	}
}

// Decoding then re-encoding any code gives the code back (except μ-law's
// negative zero 0x7F, which encodes as 0xFF), and transcoding silence gives
// silence.
func TestG711RoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	u := EncodeUlaw(DecodeUlaw(all, nil), nil)
	for i, b := range u {
		if b != byte(i) && i != 0x7F {
			t.Errorf("μ-law %#x round-trips to %#x", i, b)
		}
	}
	a := EncodeAlaw(DecodeAlaw(all, nil), nil)
	for i, b := range a {
		if b != byte(i) {
			t.Errorf("A-law %#x round-trips to %#x", i, b)
		}
	}
	buf := []byte{UlawSilence, UlawSilence}
	UlawToAlaw(buf, buf) // in place
	if buf[0] != AlawSilence {
		t.Errorf("μ-law silence → A-law %#x", buf[0])
	}
	// A-law has no exact zero: its silence is +8, which μ-law keeps as +8.
	AlawToUlaw(buf, buf)
	if v := DecodeUlaw(buf[:1], nil)[0]; v != 8 {
		t.Errorf("A-law silence → μ-law %#x (%d)", buf[0], v)
	}
}

func TestG711AppendSemantics(t *testing.T) {
	pcm := []int16{0, 1000, -1000}
	buf := make([]byte, 2, 16)
	buf[0], buf[1] = 1, 2
	out := EncodeUlaw(pcm, buf)
	if len(out) != 5 || out[0] != 1 || out[1] != 2 || &out[0] != &buf[0] {
		t.Fatalf("EncodeUlaw did not append in place: %v", out)
	}
	if n := testing.AllocsPerRun(10, func() { out = EncodeAlaw(pcm, out[:0]) }); n != 0 {
		t.Errorf("EncodeAlaw into a big enough buffer allocated %v times", n)
	}
	dec := DecodeUlaw(EncodeUlaw(pcm, nil), []int16{7})
	if len(dec) != 4 || dec[0] != 7 {
		t.Fatalf("DecodeUlaw did not append: %v", dec)
	}
}

func TestTranscodePanicsOnShortDst(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	UlawToAlaw(make([]byte, 4), make([]byte, 3))
}

func BenchmarkEncodeUlaw(b *testing.B) {
	pcm := Tone(1000, FrameDuration, 0.5)
	dst := make([]byte, 0, FrameSamples)
	b.SetBytes(int64(len(pcm)))
	b.ReportAllocs()
	for b.Loop() {
		dst = EncodeUlaw(pcm, dst[:0])
	}
}

func BenchmarkDecodeUlaw(b *testing.B) {
	ulaw := EncodeUlaw(Tone(1000, FrameDuration, 0.5), nil)
	dst := make([]int16, 0, FrameSamples)
	b.SetBytes(int64(len(ulaw)))
	b.ReportAllocs()
	for b.Loop() {
		dst = DecodeUlaw(ulaw, dst[:0])
	}
}

func BenchmarkUlawToAlaw(b *testing.B) {
	ulaw := EncodeUlaw(Tone(1000, FrameDuration, 0.5), nil)
	dst := make([]byte, len(ulaw))
	b.SetBytes(int64(len(ulaw)))
	b.ReportAllocs()
	for b.Loop() {
		UlawToAlaw(ulaw, dst)
	}
}
