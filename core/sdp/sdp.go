// Package sdp reads and writes the Session Description Protocol (RFC 4566)
// as far as callpark's calls need it: one audio stream of G.711 with RFC
// 4733 telephone events, its direction and connection address, and for
// SRTP its SDES keys (RFC 4568). Answers follow RFC 3264: every m-line of
// an offer is answered, the streams callpark does not take with port 0.
//
// Parse reads what phones, trunks and other nodes send, from the network:
// it never panics and bounds what it keeps (FuzzParse). Offer and Answer
// write what callpark sends.
package sdp

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Direction is a stream's media direction attribute.
type Direction string

// Directions (RFC 4566 6, RFC 3264 6.1).
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// Profiles of an audio stream.
const (
	ProfileRTP  = "RTP/AVP"
	ProfileSRTP = "RTP/SAVP"
)

// Static and default payload types.
const (
	PCMU = 0
	PCMA = 8
	// TelephoneEvent is the payload type callpark offers RFC 4733 events
	// with; in an answer it takes the offerer's.
	TelephoneEvent = 101
)

// Limits on what Parse keeps of a description from the network.
const (
	maxLen     = 16 << 10
	maxMedia   = 16
	maxFormats = 64
	maxCrypto  = 16
)

// Format is a payload type of a stream and what its rtpmap says.
type Format struct {
	PT   uint8
	Name string // lower case: "pcmu", "pcma", "telephone-event"; "" when unknown
	Rate int
}

// Crypto is an SDES key line (a=crypto, RFC 4568 9.1).
type Crypto struct {
	Tag   int
	Suite string // e.g. AES_CM_128_HMAC_SHA1_80
	Key   string // the base64 key and salt of the first inline key
}

// Media is one m-line.
type Media struct {
	Type    string // audio, video, ...
	Port    int
	Proto   string
	Formats []Format // in the order of the m-line
	// Fmts is the m-line's format list as written (answered as is for
	// a stream that is refused).
	Fmts      string
	Addr      netip.Addr // connection address: the media's c= or else the session's
	Direction Direction  // sendrecv when not said
	Crypto    []Crypto
	RTCPPort  int // a=rtcp, 0 when absent
}

// Session is a parsed description.
type Session struct {
	Media []Media
	// Audio is the index in Media of the first audio stream with a
	// non-zero port, or -1.
	Audio int
}

// AudioMedia returns the audio stream, or nil.
func (s *Session) AudioMedia() *Media {
	if s == nil || s.Audio < 0 {
		return nil
	}
	return &s.Media[s.Audio]
}

// Errors of Parse.
var (
	ErrMalformed  = errors.New("sdp: malformed description")
	ErrConnection = errors.New("sdp: malformed connection line")
	ErrNoAudio    = errors.New("sdp: no audio stream")
)

// Parse reads a session description. It accepts CRLF or LF line ends and
// ignores lines it does not use; it fails on a missing or repeated v= line,
// a malformed m= or c= line, and a stream without a connection address.
func Parse(b []byte) (*Session, error) {
	if len(b) == 0 || len(b) > maxLen {
		return nil, ErrMalformed
	}
	s := &Session{Audio: -1}
	var sessAddr netip.Addr
	var sessDir Direction
	versions := 0
	var cur *Media
	rtpmap := map[uint8]Format{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 2 || line[1] != '=' {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, ErrMalformed
		}
		val := line[2:]
		switch line[0] {
		case 'v':
			versions++
			if val != "0" {
				return nil, ErrMalformed
			}
		case 'c':
			a, err := parseConnection(val)
			if err != nil {
				return nil, err
			}
			if cur == nil {
				sessAddr = a
			} else {
				cur.Addr = a
			}
		case 'm':
			if len(s.Media) == maxMedia {
				return nil, ErrMalformed
			}
			m, err := parseMedia(val)
			if err != nil {
				return nil, err
			}
			if cur != nil {
				finishMedia(cur, rtpmap)
			}
			s.Media = append(s.Media, m)
			cur = &s.Media[len(s.Media)-1]
			clear(rtpmap)
		case 'a':
			name, arg, _ := strings.Cut(val, ":")
			switch name {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				if cur == nil {
					sessDir = Direction(name)
				} else {
					cur.Direction = Direction(name)
				}
			case "rtpmap":
				if cur != nil {
					if f, ok := parseRTPMap(arg); ok {
						rtpmap[f.PT] = f
					}
				}
			case "crypto":
				if cur != nil && len(cur.Crypto) < maxCrypto {
					if c, ok := parseCrypto(arg); ok {
						cur.Crypto = append(cur.Crypto, c)
					}
				}
			case "rtcp":
				if cur != nil {
					p, _, _ := strings.Cut(arg, " ")
					if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
						cur.RTCPPort = n
					}
				}
			}
		}
	}
	if versions != 1 {
		return nil, ErrMalformed
	}
	if cur != nil {
		finishMedia(cur, rtpmap)
	}
	for i := range s.Media {
		m := &s.Media[i]
		if !m.Addr.IsValid() {
			m.Addr = sessAddr
		}
		if m.Direction == "" {
			m.Direction = sessDir
		}
		if m.Direction == "" {
			m.Direction = SendRecv
		}
		if m.Port != 0 && !m.Addr.IsValid() {
			return nil, ErrConnection
		}
		if s.Audio < 0 && m.Type == "audio" && m.Port != 0 {
			s.Audio = i
		}
	}
	return s, nil
}

// parseConnection reads "IN IP4 192.0.2.1" (a TTL or count suffix of a
// multicast address is dropped).
func parseConnection(v string) (netip.Addr, error) {
	f := strings.Fields(v)
	if len(f) < 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return netip.Addr{}, ErrConnection
	}
	host, _, _ := strings.Cut(f[2], "/")
	a, err := netip.ParseAddr(host)
	if err != nil || a.Is4() != (f[1] == "IP4") && !a.Is4In6() {
		return netip.Addr{}, ErrConnection
	}
	return a.Unmap(), nil
}

// parseMedia reads "audio 4000 RTP/AVP 0 8 101".
func parseMedia(v string) (Media, error) {
	f := strings.Fields(v)
	if len(f) < 4 {
		return Media{}, ErrMalformed
	}
	port, _, _ := strings.Cut(f[1], "/") // a port count is ignored
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return Media{}, ErrMalformed
	}
	m := Media{Type: f[0], Port: p, Proto: f[2], Fmts: strings.Join(f[3:], " ")}
	if len(f)-3 > maxFormats {
		return Media{}, ErrMalformed
	}
	for _, x := range f[3:] {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 || n > 127 {
			continue // not an RTP payload type (another profile): never ours
		}
		m.Formats = append(m.Formats, Format{PT: uint8(n)})
	}
	return m, nil
}

// finishMedia names a stream's formats from its rtpmap lines and the
// static payload types.
func finishMedia(m *Media, rtpmap map[uint8]Format) {
	for i, f := range m.Formats {
		if r, ok := rtpmap[f.PT]; ok {
			m.Formats[i] = r
			continue
		}
		switch f.PT {
		case PCMU:
			m.Formats[i] = Format{PT: PCMU, Name: "pcmu", Rate: 8000}
		case PCMA:
			m.Formats[i] = Format{PT: PCMA, Name: "pcma", Rate: 8000}
		}
	}
}

// parseRTPMap reads "101 telephone-event/8000".
func parseRTPMap(v string) (Format, bool) {
	pt, enc, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Format{}, false
	}
	n, err := strconv.Atoi(pt)
	if err != nil || n < 0 || n > 127 {
		return Format{}, false
	}
	name, rest, _ := strings.Cut(strings.TrimSpace(enc), "/")
	rate, _, _ := strings.Cut(rest, "/")
	r, err := strconv.Atoi(rate)
	if err != nil || r <= 0 {
		return Format{}, false
	}
	return Format{PT: uint8(n), Name: strings.ToLower(name), Rate: r}, true
}

// parseCrypto reads "1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^20|1:32".
func parseCrypto(v string) (Crypto, bool) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, false
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return Crypto{}, false
	}
	key, ok := strings.CutPrefix(f[2], "inline:")
	if !ok {
		return Crypto{}, false
	}
	key, _, _ = strings.Cut(key, "|") // lifetime and MKI are not used
	if key == "" || len(key) > 128 {
		return Crypto{}, false
	}
	return Crypto{Tag: tag, Suite: f[1], Key: key}, true
}

// Hold reports whether a stream offered this way puts the call on hold:
// the offerer will not receive (sendonly, inactive) or names no address
// (0.0.0.0, RFC 2543 hold).
func (m *Media) Hold() bool {
	return m.Direction == SendOnly || m.Direction == Inactive || m.Addr.IsUnspecified()
}

// Codec is what callpark sends and receives on a stream once negotiated.
type Codec struct {
	PT   uint8 // audio payload type: PCMU or PCMA
	Ulaw bool
	// DTMF is the RFC 4733 payload type; HasDTMF false when none.
	DTMF    uint8
	HasDTMF bool
}

// Negotiate picks, from an offer or an answer, the first G.711 format and
// the first 8 kHz telephone-event format. ok is false without G.711.
func (m *Media) Negotiate() (c Codec, ok bool) {
	audio := false
	for _, f := range m.Formats {
		switch {
		case !audio && f.Name == "pcmu" && f.Rate == 8000:
			c.PT, c.Ulaw, audio = f.PT, true, true
		case !audio && f.Name == "pcma" && f.Rate == 8000:
			c.PT, c.Ulaw, audio = f.PT, false, true
		case !c.HasDTMF && f.Name == "telephone-event" && f.Rate == 8000:
			c.DTMF, c.HasDTMF = f.PT, true
		}
	}
	return c, audio
}

// Local describes callpark's side of a stream, for Offer and Answer.
type Local struct {
	Addr netip.AddrPort // RTP address (RTCP is Port+1)
	// Session and Version fill the o= line; Version rises with every
	// description of the session that differs.
	Session, Version uint64
	Direction        Direction // sendrecv when empty
	// Crypto, when set, makes the stream RTP/SAVP with this key line.
	Crypto *Crypto
}

// Offer writes an offer of one audio stream with PCMU, PCMA and telephone
// events.
func Offer(l Local) []byte {
	b := header(make([]byte, 0, 384), l)
	b = append(b, "m=audio "...)
	b = strconv.AppendUint(b, uint64(l.Addr.Port()), 10)
	b = append(b, ' ')
	b = append(b, profile(l)...)
	b = append(b, " 0 8 101\r\n"...)
	b = append(b, "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"...)
	b = append(b, "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"...)
	return trailer(b, l, dirOr(l.Direction, SendRecv))
}

// Answer writes the answer to offer with codec c on the offer's audio
// stream; every other stream is refused (port 0). The direction answers
// the offer's (sendonly gets recvonly) unless l.Direction restricts it.
func Answer(offer *Session, c Codec, l Local) []byte {
	b := header(make([]byte, 0, 384), l)
	for i := range offer.Media {
		m := &offer.Media[i]
		if i != offer.Audio {
			b = append(b, "m="...)
			b = append(b, m.Type...)
			b = append(b, " 0 "...)
			b = append(b, m.Proto...)
			b = append(b, ' ')
			b = append(b, m.Fmts...)
			b = append(b, "\r\n"...)
			continue
		}
		b = append(b, "m=audio "...)
		b = strconv.AppendUint(b, uint64(l.Addr.Port()), 10)
		b = append(b, ' ')
		b = append(b, profile(l)...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(c.PT), 10)
		if c.HasDTMF {
			b = append(b, ' ')
			b = strconv.AppendInt(b, int64(c.DTMF), 10)
		}
		b = append(b, "\r\na=rtpmap:"...)
		b = strconv.AppendInt(b, int64(c.PT), 10)
		if c.Ulaw {
			b = append(b, " PCMU/8000\r\n"...)
		} else {
			b = append(b, " PCMA/8000\r\n"...)
		}
		if c.HasDTMF {
			b = append(b, "a=rtpmap:"...)
			b = strconv.AppendInt(b, int64(c.DTMF), 10)
			b = append(b, " telephone-event/8000\r\na=fmtp:"...)
			b = strconv.AppendInt(b, int64(c.DTMF), 10)
			b = append(b, " 0-16\r\n"...)
		}
		b = trailer(b, l, answerDirection(m.Direction, dirOr(l.Direction, SendRecv)))
	}
	return b
}

func header(b []byte, l Local) []byte {
	ip := "IP4"
	if l.Addr.Addr().Is6() {
		ip = "IP6"
	}
	b = append(b, "v=0\r\no=callpark "...)
	b = strconv.AppendUint(b, uint64(l.Session), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(l.Version), 10)
	b = append(b, " IN "...)
	b = append(b, ip...)
	b = append(b, ' ')
	b = l.Addr.Addr().AppendTo(b)
	b = append(b, "\r\ns=callpark\r\nc=IN "...)
	b = append(b, ip...)
	b = append(b, ' ')
	b = l.Addr.Addr().AppendTo(b)
	return append(b, "\r\nt=0 0\r\n"...)
}

func trailer(b []byte, l Local, dir Direction) []byte {
	b = append(b, "a=ptime:20\r\na="...)
	b = append(b, dir...)
	b = append(b, "\r\n"...)
	if l.Crypto != nil {
		b = append(b, "a=crypto:"...)
		b = strconv.AppendInt(b, int64(l.Crypto.Tag), 10)
		b = append(b, ' ')
		b = append(b, l.Crypto.Suite...)
		b = append(b, " inline:"...)
		b = append(b, l.Crypto.Key...)
		b = append(b, "\r\n"...)
	}
	return b
}

func profile(l Local) string {
	if l.Crypto != nil {
		return ProfileSRTP
	}
	return ProfileRTP
}

func dirOr(d, def Direction) Direction {
	if d == "" {
		return def
	}
	return d
}

// answerDirection is the direction answering offered with a local
// preference (RFC 3264 6.1).
func answerDirection(offered, local Direction) Direction {
	switch offered {
	case Inactive:
		return Inactive
	case SendOnly:
		if local == Inactive || local == SendOnly {
			return Inactive
		}
		return RecvOnly
	case RecvOnly:
		if local == Inactive || local == RecvOnly {
			return Inactive
		}
		return SendOnly
	}
	return local
}
