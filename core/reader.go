package core

import (
	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/core/rtp"
	"github.com/callpark/callpark/events"
)

// ReceiveRTP implements rtp.Receiver: what the leg's phone sends, handed
// over by its media poller. Audio goes to the bridged peer (transcoded
// when the legs' laws differ); RFC 4733 telephone events are relayed and
// reported, once per event, as call.dtmf. It runs on the poller's
// goroutine, always the same one for a leg, which alone touches the
// leg's digit state (the dtmf fields).
func (ch *channel) ReceiveRTP(_ *rtp.Conn, p *rtp.Packet) {
	codec := ch.out.codecs()
	peer := ch.peer.Load()
	if codec.HasDTMF && p.PT == codec.DTMF {
		payload := p.Payload
		if len(payload) < 4 {
			return
		}
		if peer != nil {
			peer.out.forwardDTMF(payload, p.TS, payload[0])
		}
		// Report each event once, on its first end packet.
		if payload[1]&0x80 != 0 && (!ch.dtmf.seen || p.TS != ch.dtmf.ts || payload[0] != ch.dtmf.event) {
			ch.dtmf.seen = true
			ch.dtmf.ts, ch.dtmf.event = p.TS, payload[0]
			if d := audio.DTMFDigit(payload[0]); d != 0 {
				e := ch.event(events.CallDTMF)
				e.Digit = string(d)
				ch.core.publish(e)
			}
		}
		return
	}
	if p.PT != 0 && p.PT != 8 && p.PT != codec.PT {
		// Comfort noise or an unknown payload: nothing to bridge.
		return
	}
	if peer != nil {
		peer.out.forward(p.Payload, p.PT == 0 || (codec.Ulaw && p.PT != 8))
	}
}

// dtmfState is the last telephone event reported on a leg.
type dtmfState struct {
	seen  bool
	ts    uint32
	event byte
}
