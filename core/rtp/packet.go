package rtp

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// HeaderLen is the length of an RTP header without CSRCs or extension.
const HeaderLen = 12

// Packet is one received RTP packet. A Receiver gets it from the poller's
// own buffer: it must not keep Payload (or the Packet) after it returns.
type Packet struct {
	PT      uint8
	Marker  bool
	Seq     uint16
	TS      uint32
	SSRC    uint32
	Payload []byte
	From    netip.AddrPort
}

var errNotRTP = errors.New("rtp: not an RTP packet")

// parse reads an RTP header (RFC 3550 5.1) and finds the payload: after
// the CSRCs and a header extension, before the padding.
func (p *Packet) parse(b []byte) error {
	if len(b) < HeaderLen || b[0]>>6 != 2 {
		return errNotRTP
	}
	cc := int(b[0] & 0x0f)
	off := HeaderLen + 4*cc
	if len(b) < off {
		return errNotRTP
	}
	if b[0]&0x10 != 0 { // extension
		if len(b) < off+4 {
			return errNotRTP
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
		if len(b) < off {
			return errNotRTP
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: the last byte counts it
		pad := int(b[end-1])
		if pad == 0 || end-pad < off {
			return errNotRTP
		}
		end -= pad
	}
	p.Marker = b[1]&0x80 != 0
	p.PT = b[1] & 0x7f
	p.Seq = binary.BigEndian.Uint16(b[2:])
	p.TS = binary.BigEndian.Uint32(b[4:])
	p.SSRC = binary.BigEndian.Uint32(b[8:])
	p.Payload = b[off:end]
	return nil
}

// PutHeader writes a 12-byte RTP header into b.
func PutHeader(b []byte, pt uint8, marker bool, seq uint16, ts, ssrc uint32) {
	b[0] = 0x80
	b[1] = pt & 0x7f
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}
