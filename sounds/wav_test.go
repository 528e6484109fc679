package sounds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// wavSpec describes a WAV file for tests to build, valid by default.
type wavSpec struct {
	tag      uint16
	channels uint16
	rate     uint32
	bits     uint16
	samples  []int16
	before   []byte // raw chunks inserted between fmt and data
	dataSize int64  // overrides the data chunk's declared size when non-zero
}

func validSpec(samples ...int16) wavSpec {
	if len(samples) == 0 {
		samples = []int16{0, 1000, -1000, 32767, -32768}
	}
	return wavSpec{tag: fmtPCM, channels: 1, rate: 8000, bits: 16, samples: samples}
}

func (s wavSpec) bytes() []byte {
	var fmtc bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&fmtc, le, s.tag)
	binary.Write(&fmtc, le, s.channels)
	binary.Write(&fmtc, le, s.rate)
	binary.Write(&fmtc, le, s.rate*uint32(s.channels)*uint32(s.bits)/8)
	binary.Write(&fmtc, le, s.channels*s.bits/8)
	binary.Write(&fmtc, le, s.bits)
	var data bytes.Buffer
	binary.Write(&data, le, s.samples)

	var body bytes.Buffer
	body.WriteString("WAVE")
	chunk(&body, "fmt ", fmtc.Bytes(), -1)
	body.Write(s.before)
	size := int64(data.Len())
	if s.dataSize != 0 {
		size = s.dataSize
	}
	chunk(&body, "data", data.Bytes(), size)

	var out bytes.Buffer
	out.WriteString("RIFF")
	binary.Write(&out, le, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

func chunk(w *bytes.Buffer, id string, b []byte, size int64) {
	if size < 0 {
		size = int64(len(b))
	}
	w.WriteString(id)
	binary.Write(w, binary.LittleEndian, uint32(size))
	w.Write(b)
	if len(b)%2 == 1 {
		w.WriteByte(0)
	}
}

func rawChunk(id string, b []byte) []byte {
	var buf bytes.Buffer
	chunk(&buf, id, b, -1)
	return buf.Bytes()
}

func TestDecodeWAVValid(t *testing.T) {
	want := []int16{0, 1000, -1000, 32767, -32768}
	got, err := DecodeWAV(bytes.NewReader(validSpec(want...).bytes()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDecodeWAVSkipsUnknownChunks(t *testing.T) {
	s := validSpec(1, 2, 3)
	// An odd-sized chunk exercises the pad byte.
	s.before = append(rawChunk("LIST", []byte("INFOISFT\x05\x00\x00\x00sox!\x00")), rawChunk("fact", []byte{1, 2, 3})...)
	got, err := DecodeWAV(bytes.NewReader(s.bytes()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(got, []int16{1, 2, 3}) {
		t.Fatalf("got %v", got)
	}
}

func TestDecodeWAVExtensiblePCM(t *testing.T) {
	le := binary.LittleEndian
	var f bytes.Buffer
	for _, v := range []any{uint16(fmtExtensible), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16),
		uint16(22), uint16(16), uint32(4)} {
		binary.Write(&f, le, v)
	}
	f.WriteString(pcmSubformat)
	var body bytes.Buffer
	body.WriteString("WAVE")
	chunk(&body, "fmt ", f.Bytes(), -1)
	chunk(&body, "data", []byte{7, 0, 8, 0}, -1)
	file := append([]byte("RIFF\x00\x00\x00\x00"), body.Bytes()...)
	got, err := DecodeWAV(bytes.NewReader(file), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(got, []int16{7, 8}) {
		t.Fatalf("got %v", got)
	}
}

func TestDecodeWAVRejects(t *testing.T) {
	valid := validSpec().bytes()
	tests := []struct {
		name string
		file []byte
		max  int64
		msg  string
	}{
		{"rate 16000", func() []byte { s := validSpec(); s.rate = 16000; return s.bytes() }(), 0, "sample rate 16000"},
		{"rate 44100", func() []byte { s := validSpec(); s.rate = 44100; return s.bytes() }(), 0, "sample rate 44100"},
		{"stereo", func() []byte { s := validSpec(); s.channels = 2; return s.bytes() }(), 0, "2 channels"},
		{"8-bit", func() []byte { s := validSpec(); s.bits = 8; return s.bytes() }(), 0, "8 bits"},
		{"24-bit", func() []byte { s := validSpec(); s.bits = 24; return s.bytes() }(), 0, "24 bits"},
		{"float", func() []byte { s := validSpec(); s.tag = 3; return s.bytes() }(), 0, "format tag 0x0003"},
		{"mu-law", func() []byte { s := validSpec(); s.tag = 7; return s.bytes() }(), 0, "format tag 0x0007"},
		{"empty", nil, 0, "RIFF header"},
		{"not riff", []byte("RIFX\x00\x00\x00\x00WAVEfmt "), 0, "not a RIFF/WAVE"},
		{"not wave", []byte("RIFF\x00\x00\x00\x00AVI fmt "), 0, "not a RIFF/WAVE"},
		{"truncated header", valid[:20], 0, "truncated fmt"},
		{"no data", valid[:36], 0, "no data chunk"},
		{"truncated data", valid[:len(valid)-3], 0, "truncated data"},
		{"empty data", validSpec().bytes()[:36], 0, "no data chunk"},
		{"zero samples", func() []byte { s := validSpec(); s.samples = []int16{}; return s.bytes() }(), 0, "empty data chunk"},
		{"odd data", func() []byte { s := validSpec(); s.dataSize = 9; return s.bytes() }(), 0, "not whole 16-bit samples"},
		{"over limit", valid, 8, "exceeds the 8-byte limit"},
		{"huge declared data", func() []byte { s := validSpec(); s.dataSize = 0xFFFFFFFE; return s.bytes() }(), 0, "exceeds"},
		{"huge unknown chunk", func() []byte {
			s := validSpec()
			s.before = []byte("junk\xff\xff\xff\x7f")
			return s.bytes()
		}(), 0, "truncated \"junk\" chunk"},
		{"data before fmt", []byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x01\x00"), 0, "data chunk before fmt"},
		{"huge fmt", []byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\xff"), 0, "fmt chunk of 4294967295 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = 1 << 20
			}
			_, err := DecodeWAV(bytes.NewReader(tt.file), max)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

// A corrupt header declaring a huge data chunk within the limit must not
// allocate it all before finding out the file is short.
func TestDecodeWAVCorruptSizeAllocatesLittle(t *testing.T) {
	s := validSpec()
	s.dataSize = 0x7FFFFFFE
	file := s.bytes()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeWAV(bytes.NewReader(file), 1<<32)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "truncated data") {
		t.Fatalf("err = %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Errorf("allocated %d bytes rejecting a %d-byte file", got, len(file))
	}
}

// A long valid file grows its buffer past the initial allocation correctly.
func TestDecodeWAVLarge(t *testing.T) {
	want := make([]int16, 3*initialAlloc/2+7)
	for i := range want {
		want[i] = int16(i * 31)
	}
	got, err := DecodeWAV(bytes.NewReader(validSpec(want...).bytes()), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(got, want) {
		t.Fatal("samples differ")
	}
	if 2*cap(got) > 2*len(want)+initialAlloc {
		t.Errorf("capacity %d for %d samples", cap(got), len(want))
	}
}

func TestLoadDecodesEverything(t *testing.T) {
	lib, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	names := lib.PromptNames()
	if len(names) != 22 {
		t.Errorf("%d prompts: %v", len(names), names)
	}
	for _, name := range names {
		pcm, ok := lib.Prompt(name)
		if !ok || len(pcm) < 8000/10 {
			t.Errorf("prompt %q: %d samples", name, len(pcm))
		}
		if peak := peak(pcm); peak < 16000 {
			t.Errorf("prompt %q: peak %d, want normalised near -3 dBFS", name, peak)
		}
	}
	for _, r := range "0123456789*#" {
		name, ok := DigitPrompt(r)
		if _, found := lib.Prompt(name); !ok || !found {
			t.Errorf("no prompt for %q", r)
		}
	}
	if _, ok := DigitPrompt('A'); ok {
		t.Error("DigitPrompt accepted 'A'")
	}
	for _, class := range []string{"", DefaultMusic} {
		pcm, ok := lib.Music(class)
		if !ok || len(pcm) < 25*8000 {
			t.Errorf("music %q: %d samples", class, len(pcm))
		}
	}
	if _, ok := lib.Music("nope"); ok {
		t.Error("unknown class found")
	}
}

// Every embedded file goes through DecodeWAV directly too, so a file that
// Load skipped (wrong extension, say) would still be caught here.
func TestEmbeddedFilesDecode(t *testing.T) {
	for _, dir := range []string{"prompts", "music"} {
		entries, err := embedded.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := embedded.ReadFile(dir + "/" + e.Name())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeWAV(bytes.NewReader(b), MaxMusicBytes); err != nil {
				t.Errorf("%s/%s: %v", dir, e.Name(), err)
			}
		}
	}
}

func TestLoadMusicDir(t *testing.T) {
	lib, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.wav", validSpec(3, 4).bytes())
	write("a.WAV", validSpec(1, 2).bytes())
	write("notes.txt", []byte("not audio"))
	if err := lib.LoadMusicDir("acme", dir); err != nil {
		t.Fatal(err)
	}
	got, ok := lib.Music("acme")
	if !ok || !slicesEqual(got, []int16{1, 2, 3, 4}) {
		t.Fatalf("acme = %v, %v", got, ok)
	}

	// A bad file rejects the whole directory and keeps the old music.
	s := validSpec(9)
	s.rate = 44100
	write("c.wav", s.bytes())
	if err := lib.LoadMusicDir("acme", dir); err == nil || !strings.Contains(err.Error(), "c.wav") {
		t.Fatalf("bad file: err = %v", err)
	}
	if got, _ := lib.Music("acme"); !slicesEqual(got, []int16{1, 2, 3, 4}) {
		t.Fatalf("acme changed to %v", got)
	}

	if err := lib.LoadMusicDir("empty", t.TempDir()); err == nil {
		t.Error("empty directory accepted")
	}
	if err := lib.LoadMusicDir("missing", filepath.Join(dir, "nope")); err == nil {
		t.Error("missing directory accepted")
	}
	if err := lib.LoadMusicDir(DefaultMusic, dir); err == nil {
		t.Error("built-in class replaced")
	}
}

func FuzzDecodeWAV(f *testing.F) {
	f.Add(validSpec().bytes())
	s := validSpec(1, 2, 3)
	s.before = rawChunk("LIST", []byte("INFO"))
	f.Add(s.bytes())
	s = validSpec()
	s.dataSize = 0x7FFFFFFE
	f.Add(s.bytes())
	s = validSpec()
	s.rate = 44100
	f.Add(s.bytes())
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	if b, err := embedded.ReadFile("prompts/star.wav"); err == nil {
		f.Add(b[:min(len(b), 512)])
	}
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, err := DecodeWAV(bytes.NewReader(b), limit)
		if err != nil {
			if pcm != nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v with %d samples", err, len(pcm))
			}
			return
		}
		if len(pcm) == 0 || 2*len(pcm) > limit || 2*len(pcm) > len(b) {
			t.Fatalf("%d samples from %d bytes", len(pcm), len(b))
		}
		// Whatever was accepted must read the same through a one-byte reader.
		again, err := DecodeWAV(io.LimitReader(oneByteReader{bytes.NewReader(b)}, int64(len(b))), limit)
		if err != nil || !slicesEqual(pcm, again) {
			t.Fatalf("not stable under short reads: %v", err)
		}
	})
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func peak(pcm []int16) int {
	p := 0
	for _, s := range pcm {
		v := int(s)
		if v < 0 {
			v = -v
		}
		p = max(p, v)
	}
	return p
}
