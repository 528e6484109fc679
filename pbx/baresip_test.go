package pbx_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestBaresipTLSAndSRTP: baresip, a real softphone, registers over TLS
// with SRTP mandatory and calls a plain RTP phone; tones pass both ways
// through the SRTP-RTP bridge. Parked, it hears music over SRTP; retrieved
// by another phone, tones pass again. On the wire (a tshark capture of the
// loopback), every packet of baresip's media is SRTP: authenticated and
// carrying no audible tone, while the plain legs carry the tones in clear.
func TestBaresipTLSAndSRTP(t *testing.T) {
	// baresip 1.0 gives up on a SHA-256 challenge instead of answering the
	// MD5 one beside it: its customer offers MD5 only.
	dir := writeDialplans(t, "customers/demo.yaml", "  digest: [md5, sha-256]", "  digest: [md5]")
	p := pbxtest.Start(t, pbxtest.WithTLS(t), pbxtest.WithDialplans(dir))
	capture := pbxtest.StartCapture(t, "udp")
	reception := p.Baresip(t, "demo", "200", pbxtest.BaresipOptions{TLS: true, Tone: 1000})
	bob := p.Phone(t, "demo", "201")
	carol := p.Phone(t, "demo", "202")

	cb := softphoneCalls(t, reception, bob, 1000)
	// A second of steady audio through the bridge, for the capture too.
	if n := cb.PacketsDuring(time.Second); n < 40 {
		t.Fatalf("201 got %d packets from baresip in a second, want 50", n)
	}

	cb.StopTone()
	cb.Park(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	reception.ExpectSound(t, 5*time.Second, 1000, 1400)

	cc := carol.Dial(t, "*71333")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	cc.SendTone(1700)
	cc.ExpectTone(t, 1000, 5*time.Second)
	reception.ExpectTone(t, 1700, 5*time.Second)
	reception.Hangup(t)
	cc.ExpectEnded(t, 5*time.Second)

	pkts := capture.Stop(t)
	srtp, plain := splitMedia(pkts, reception.RTPPorts)
	n := 0
	for _, s := range srtp {
		n += s.audio
	}
	if n < 50 {
		// Say what was seen, so that a rare miss can be told apart: no
		// packets at all (the capture) or media on other ports (baresip).
		var streams []string
		for k, s := range plain {
			streams = append(streams, fmt.Sprintf("%d->%d:%d", k[0], k[1], s.audio))
		}
		t.Fatalf("capture: %d packets of baresip's media (ports %d-%d), want at least a second's worth; %d UDP packets captured, plain audio streams %v",
			n, reception.RTPPorts[0], reception.RTPPorts[1], len(pkts), streams)
	}
	for _, s := range srtp {
		if s.audio > 0 && s.tagless > 0 {
			t.Errorf("baresip stream %d->%d: %d of %d audio packets without an SRTP authentication tag", s.src, s.dst, s.tagless, s.audio)
		}
		if f, ok := s.tone(1000, 1400, 1700); ok {
			t.Errorf("baresip stream %d->%d: a %.0f Hz tone is audible on the wire: not SRTP", s.src, s.dst, f)
		}
	}
	heard := false
	for _, s := range plain {
		if _, ok := s.tone(1000); ok {
			heard = true
		}
	}
	if !heard {
		t.Error("the check hears no tone on the plain legs either: it proves nothing")
	}
	t.Logf("capture: %d SRTP packets in %d streams, %d plain RTP streams", n, len(srtp), len(plain))
}

// stream is one direction of captured RTP between two ports.
type stream struct {
	src, dst       int
	audio, tagless int
	pcm            []int16
}

// tone reports whether any 200 ms of the stream's payload, decoded as
// G.711, is one of the tones.
func (s *stream) tone(freqs ...float64) (float64, bool) {
	const win = 1600
	for off := 0; off+win <= len(s.pcm); off += win / 2 {
		if f, ok := audio.DominantTone(s.pcm[off:off+win], freqs...); ok {
			return f, true
		}
	}
	return 0, false
}

// splitMedia groups captured RTP (version 2, G.711 payload types) into
// streams, those with a port in ports (baresip's) apart.
func splitMedia(pkts []pbxtest.UDPPacket, ports [2]int) (srtp, plain map[[2]int]*stream) {
	srtp, plain = map[[2]int]*stream{}, map[[2]int]*stream{}
	in := func(p int) bool { return p >= ports[0] && p <= ports[1] }
	for _, p := range pkts {
		b := p.Payload
		if len(b) < 12 || b[0]>>6 != 2 {
			continue
		}
		pt := b[1] & 0x7f
		if pt != 0 && pt != 8 {
			continue
		}
		secure := in(p.SrcPort) || in(p.DstPort)
		set := plain
		if secure {
			set = srtp
		}
		k := [2]int{p.SrcPort, p.DstPort}
		s := set[k]
		if s == nil {
			s = &stream{src: p.SrcPort, dst: p.DstPort}
			set[k] = s
		}
		s.audio++
		body := b[12:]
		if secure {
			// AES_CM_128_HMAC_SHA1_80: 160 bytes of audio and a 10-byte tag.
			if len(body) != 170 {
				s.tagless++
			}
			body = body[:min(len(body), 160)]
		}
		if pt == 0 {
			s.pcm = audio.DecodeUlaw(body, s.pcm)
		} else {
			s.pcm = audio.DecodeAlaw(body, s.pcm)
		}
	}
	return srtp, plain
}
