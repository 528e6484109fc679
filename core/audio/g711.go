package audio

// G.711 (ITU-T) companding, bit-exact with the ITU-T G.191 software tool
// library (ulaw_compress/alaw_compress and their expansions), which
// github.com/zaf/g711 also follows: negative samples are folded with one's
// complement, μ-law works on the top 14 bits, A-law on the top 13.
//
// Decoding and transcoding are 256-entry table lookups; encoding is a few
// shifts around a leading-zero count, which is faster than a 64 KiB table
// and keeps the cache for the payloads.

import "math/bits"

// Silence in each law: what a zero sample encodes to. Note 0x00 is
// full-scale negative in μ-law, not silence.
const (
	UlawSilence = 0xFF
	AlawSilence = 0xD5
)

// Lookup tables, computed once from the reference formulas and never written
// afterwards.
var (
	ulawToPCM  = ulawDecodeTable()
	alawToPCM  = alawDecodeTable()
	ulawToAlaw = transcodeTable(ulawToPCM, alawEncode)
	alawToUlaw = transcodeTable(alawToPCM, ulawEncode)
)

// EncodeUlaw appends the μ-law encoding of pcm to dst and returns the
// extended slice (pass buf[:0] to reuse a buffer).
func EncodeUlaw(pcm []int16, dst []byte) []byte { return encode(pcm, dst, ulawEncode) }

// DecodeUlaw appends the linear samples of the μ-law bytes src to dst and
// returns the extended slice.
func DecodeUlaw(src []byte, dst []int16) []int16 { return decode(src, dst, &ulawToPCM) }

// EncodeAlaw appends the A-law encoding of pcm to dst and returns the
// extended slice.
func EncodeAlaw(pcm []int16, dst []byte) []byte { return encode(pcm, dst, alawEncode) }

// DecodeAlaw appends the linear samples of the A-law bytes src to dst and
// returns the extended slice.
func DecodeAlaw(src []byte, dst []int16) []int16 { return decode(src, dst, &alawToPCM) }

// UlawToAlaw transcodes the μ-law bytes src into dst[:len(src)], for bridging
// a PCMU leg to a PCMA leg without going through linear PCM. dst may be src
// (in place). It panics if dst is shorter than src.
func UlawToAlaw(src, dst []byte) { transcode(src, dst, &ulawToAlaw) }

// AlawToUlaw transcodes the A-law bytes src into dst[:len(src)]; see
// UlawToAlaw.
func AlawToUlaw(src, dst []byte) { transcode(src, dst, &alawToUlaw) }

func encode(pcm []int16, dst []byte, law func(int16) byte) []byte {
	dst = grow(dst, len(pcm))
	out := dst[len(dst)-len(pcm):]
	for i, s := range pcm {
		out[i] = law(s)
	}
	return dst
}

func decode(src []byte, dst []int16, table *[256]int16) []int16 {
	for _, b := range src {
		dst = append(dst, table[b])
	}
	return dst
}

func transcode(src, dst []byte, table *[256]byte) {
	dst = dst[:len(src)]
	for i, b := range src {
		dst[i] = table[b]
	}
}

// grow extends dst by n bytes, reallocating at most once.
func grow(dst []byte, n int) []byte {
	if l := len(dst) + n; l <= cap(dst) {
		return dst[:l]
	}
	out := make([]byte, len(dst)+n)
	copy(out, dst)
	return out
}

// ulawEncode is G.191 ulaw_compress for one 16-bit sample.
func ulawEncode(s int16) byte {
	x := int32(s)
	var sign byte = 0x80 // set bit = positive in the inverted output
	if x < 0 {
		x = ^x
		sign = 0
	}
	x = x>>2 + 33 // 14-bit magnitude plus bias
	if x > 0x1FFF {
		x = 0x1FFF
	}
	seg := 16 - bits.LeadingZeros16(uint16(x>>5)) // 1..8
	mant := byte(x>>seg) & 0x0F
	return sign | byte(8-seg)<<4 | (0x0F - mant)
}

// alawEncode is G.191 alaw_compress for one 16-bit sample.
func alawEncode(s int16) byte {
	x := int32(s)
	var sign byte = 0x80 // set bit = positive
	if x < 0 {
		x = ^x
		sign = 0
	}
	ix := x >> 4 // 12-bit magnitude
	if ix > 15 {
		seg := int32(12 - bits.LeadingZeros16(uint16(ix))) // 1..7
		ix = ix>>(seg-1) - 16 + seg<<4
	}
	return (sign | byte(ix)) ^ 0x55
}

func ulawDecodeTable() (t [256]int16) {
	for i := range t {
		u := ^byte(i)
		exp := int32(u>>4) & 7
		mant := int32(u & 0x0F)
		step := int32(4) << (exp + 1)
		v := 0x80<<exp + step*mant + step/2 - 4*33
		if u&0x80 != 0 {
			v = -v
		}
		t[i] = int16(v)
	}
	return t
}

func alawDecodeTable() (t [256]int16) {
	for i := range t {
		a := byte(i) ^ 0x55
		exp := int32(a&0x7F) >> 4
		mant := int32(a & 0x0F)
		if exp > 0 {
			mant += 16
		}
		mant = mant<<4 + 8
		if exp > 1 {
			mant <<= exp - 1
		}
		if a&0x80 == 0 {
			mant = -mant
		}
		t[i] = int16(mant)
	}
	return t
}

func transcodeTable(decode [256]int16, encode func(int16) byte) (t [256]byte) {
	for i := range t {
		t[i] = encode(decode[i])
	}
	return t
}
