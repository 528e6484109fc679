package sounds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The only audio format callpark plays: what G.711 carries, so no resampling.
const (
	wavRate     = 8000
	wavChannels = 1
	wavBits     = 16

	fmtPCM        = 0x0001
	fmtExtensible = 0xFFFE

	// maxFmtSize bounds the fmt chunk we are willing to read (PCM is 16
	// bytes, WAVE_FORMAT_EXTENSIBLE 40).
	maxFmtSize = 64
	// readChunk is the size of the stack buffer samples are decoded through.
	readChunk = 4096
	// initialAlloc is how much of a data chunk's declared size is allocated
	// before any of it has been read.
	initialAlloc = 1 << 20
)

// pcmSubformat is the KSDATAFORMAT_SUBTYPE_PCM GUID that a
// WAVE_FORMAT_EXTENSIBLE fmt chunk carries for plain integer PCM.
const pcmSubformat = "\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

// ErrFormat is wrapped by every error DecodeWAV returns for input that is not
// a valid 8 kHz mono 16-bit PCM WAV file.
var ErrFormat = errors.New("wav: unsupported or corrupt file")

// DecodeWAV reads a RIFF/WAVE file holding 16-bit signed PCM at 8000 Hz, mono,
// and returns its samples. Anything else (another rate, stereo, 8 or 24 bits,
// float, a compressed codec, a truncated or oversized file) is rejected with
// an error wrapping ErrFormat that says what was wrong. Chunks other than
// "fmt " and "data" (LIST, fact, cue …) are skipped; anything after the data
// chunk is ignored.
//
// DecodeWAV trusts no size in the header: the sample buffer is allocated only
// after the data chunk's size has been checked against maxBytes, so a corrupt
// or hostile header cannot make it allocate more than maxBytes.
func DecodeWAV(r io.Reader, maxBytes int64) ([]int16, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("wav: maxBytes must be positive, got %d", maxBytes)
	}
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, formatErr("reading RIFF header: %v", err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, formatErr("not a RIFF/WAVE file")
	}
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if haveFmt {
				return nil, formatErr("no data chunk: %v", err)
			}
			return nil, formatErr("no fmt chunk: %v", err)
		}
		id := string(ch[0:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if haveFmt {
				return nil, formatErr("more than one fmt chunk")
			}
			if err := readFmt(r, size); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, formatErr("data chunk before fmt chunk")
			}
			return readData(r, size, maxBytes)
		default:
			// Chunks are word aligned: an odd size is followed by a pad byte.
			skip := size + size&1
			if n, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, formatErr("truncated %q chunk: %d of %d bytes: %v", id, n, skip, err)
			}
		}
	}
}

// readFmt reads and checks a fmt chunk body of the given size.
func readFmt(r io.Reader, size int64) error {
	if size < 16 || size > maxFmtSize {
		return formatErr("fmt chunk of %d bytes (want 16 to %d)", size, maxFmtSize)
	}
	var buf [maxFmtSize + 1]byte
	b := buf[:size+size&1]
	if _, err := io.ReadFull(r, b); err != nil {
		return formatErr("truncated fmt chunk: %v", err)
	}
	le := binary.LittleEndian
	tag := le.Uint16(b[0:2])
	channels := le.Uint16(b[2:4])
	rate := le.Uint32(b[4:8])
	byteRate := le.Uint32(b[8:12])
	blockAlign := le.Uint16(b[12:14])
	bits := le.Uint16(b[14:16])

	switch tag {
	case fmtPCM:
	case fmtExtensible:
		// cbSize(2) validBits(2) channelMask(4) subformat GUID(16).
		if size < 40 || le.Uint16(b[16:18]) < 22 {
			return formatErr("WAVE_FORMAT_EXTENSIBLE fmt chunk too short (%d bytes)", size)
		}
		if !bytes.Equal(b[24:40], []byte(pcmSubformat)) {
			return formatErr("WAVE_FORMAT_EXTENSIBLE with a non-PCM subformat")
		}
		if valid := le.Uint16(b[18:20]); valid != 0 && valid != wavBits {
			return formatErr("%d valid bits per sample, want %d", valid, wavBits)
		}
	default:
		return formatErr("format tag 0x%04x, want PCM (0x0001)", tag)
	}
	if channels != wavChannels {
		return formatErr("%d channels, want mono", channels)
	}
	if rate != wavRate {
		return formatErr("sample rate %d Hz, want %d Hz", rate, wavRate)
	}
	if bits != wavBits {
		return formatErr("%d bits per sample, want %d", bits, wavBits)
	}
	if blockAlign != 2 || byteRate != wavRate*2 {
		return formatErr("inconsistent fmt chunk: block align %d, byte rate %d", blockAlign, byteRate)
	}
	return nil
}

// readData reads size bytes of little-endian samples, refusing sizes above
// maxBytes before allocating anything.
func readData(r io.Reader, size, maxBytes int64) ([]int16, error) {
	switch {
	case size == 0:
		return nil, formatErr("empty data chunk")
	case size%2 != 0:
		return nil, formatErr("data chunk of %d bytes is not whole 16-bit samples", size)
	case size > maxBytes:
		return nil, formatErr("data chunk of %d bytes exceeds the %d-byte limit", size, maxBytes)
	}
	// The declared size may be a lie: allocate for at most initialAlloc
	// bytes up front and grow (never past size) as samples actually arrive,
	// so a short file with a large declared chunk costs little.
	want := int(size / 2)
	pcm := make([]int16, 0, min(want, initialAlloc/2))
	var buf [readChunk]byte
	for len(pcm) < want {
		n := min(len(buf), 2*(want-len(pcm)))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return nil, formatErr("truncated data chunk: got about %d of %d bytes", 2*len(pcm), size)
		}
		if len(pcm)+n/2 > cap(pcm) {
			pcm = slices.Grow(pcm, min(want, 2*cap(pcm))-len(pcm))
		}
		for j := 0; j < n; j += 2 {
			pcm = append(pcm, int16(binary.LittleEndian.Uint16(buf[j:])))
		}
	}
	return pcm, nil
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}
