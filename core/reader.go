package core

import (
	"github.com/emiago/diago"

	"github.com/callpark/callpark/core/audio"

	"github.com/callpark/callpark/events"
)

// readLoop is the one reader of a leg's RTP. It forwards audio to the
// bridged peer and relays and reports DTMF until the leg's media closes.
func (ch *channel) readLoop(dm *diago.DialogMedia) {
	r := dm.RTPPacketReader
	if r == nil {
		return
	}
	buf := make([]byte, 1500)
	var lastDigitTS uint32
	var lastDigit byte
	var digitSeen bool
	for {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		hdr := r.PacketHeader
		ulaw, dtmfPT, hasTE := ch.out.codec()
		peer := ch.peer.Load()
		if hasTE && hdr.PayloadType == dtmfPT {
			if peer != nil && n >= 4 {
				peer.out.forwardDTMF(buf[:n], hdr.Timestamp, buf[0])
			}
			// Report each event once, on its first end packet.
			if n >= 4 && buf[1]&0x80 != 0 && (!digitSeen || hdr.Timestamp != lastDigitTS || buf[0] != lastDigit) {
				digitSeen = true
				lastDigitTS, lastDigit = hdr.Timestamp, buf[0]
				if d := audio.DTMFDigit(buf[0]); d != 0 {
					e := ch.event(events.CallDTMF)
					e.Digit = string(d)
					ch.core.publish(e)
				}
			}
			continue
		}
		if hdr.PayloadType != 0 && hdr.PayloadType != 8 {
			// Comfort noise or an unknown payload: nothing to bridge.
			continue
		}
		if peer != nil {
			peer.out.forward(buf[:n], hdr.PayloadType == 0 || (ulaw && hdr.PayloadType != 8))
		}
	}
}
