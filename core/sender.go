package core

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/pion/rtp"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/core/rawudp"
)

// outMode is what feeds a channel's outgoing audio.
type outMode int32

const (
	modeNone   outMode = iota // nothing is sent
	modeMusic                 // the music hub
	modePrompt                // a prompt playback
	modeBridge                // the bridged peer's audio
)

// sender owns a channel's outgoing RTP: one SSRC, one sequence and
// timestamp, whatever the source. All writes go through write under mu, so
// the hub goroutine, a prompt goroutine and the peer's reader never race.
//
// Lock order: ctl before mu.
type sender struct {
	ch *channel

	// ctl serialises mode changes.
	ctl        sync.Mutex
	mode       atomic.Int32
	wantMusic  bool
	musicClass string
	hub        *audio.Hub
	promptStop chan struct{}

	mu        sync.Mutex
	dm        *diago.DialogMedia
	sess      *media.MediaSession // dm's current session, cached (dm.MediaSession() locks)
	raw       bool                // sess can take pre-marshalled packets (no SRTP)
	ssrcShown bool                // diago's RTP session has seen our SSRC
	wbuf      []byte              // one marshalled packet
	hdr       [12]byte            // one marshalled RTP header
	// batchOK: music may go out through the core's raw socket, from src
	// (the leg's RTP address) to dst (the far end's), both IPv4.
	batchOK   bool
	src, dst  netip.AddrPort
	ssrc      uint32
	seq       uint16
	ts        uint32
	lastWrite time.Time
	pkt       rtp.Packet
	scratch   []byte
	// Negotiated codecs; ulaw false means PCMA.
	pt     uint8
	ulaw   bool
	dtmfPT uint8
	hasTE  bool
	// muted while the phone holds (inactive/sendonly) or after stop.
	muted   bool
	stopped bool
	// deaf: the leg plays music and its phone's audio is dropped by the
	// kernel (deaf.go); deafOn, deafPT and deafSess are the filter in place.
	deaf     bool
	deafOn   bool
	deafPT   int
	deafSess *media.MediaSession
	// DTMF relay state.
	teInTS  uint32
	teOutTS uint32
	teEvent byte
	teSeen  bool
}

func (s *sender) Mode() outMode { return outMode(s.mode.Load()) }

// attach binds the sender to the leg's media once it is up.
func (s *sender) attach(dm *diago.DialogMedia) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dm = dm
	s.ssrc = rand.Uint32()
	s.seq = uint16(rand.Uint32())
	s.ts = rand.Uint32()
	if w := dm.RTPPacketWriter; w != nil {
		w.ClockDisable()
	}
	s.updateCodecsLocked()
}

// updateCodecs re-reads the negotiated codecs after a re-INVITE.
func (s *sender) updateCodecs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateCodecsLocked()
}

func (s *sender) updateCodecsLocked() {
	if s.dm == nil {
		return
	}
	sess := s.dm.MediaSession()
	s.sess = sess
	if sess == nil {
		return
	}
	s.raw = sess.SecureRTP == 0
	s.src, s.dst = udpAddrPort(&sess.Laddr), udpAddrPort(&sess.Raddr)
	s.batchOK = s.raw && s.ch.core.music != nil && s.src.Addr().Is4() && s.dst.Addr().Is4() &&
		s.dst.Port() != 0 && !s.dst.Addr().IsUnspecified()
	codecs := sess.CommonCodecs()
	if len(codecs) == 0 {
		codecs = sess.Codecs
	}
	s.hasTE = false
	audioSet := false
	for _, c := range codecs {
		if c.Name == media.CodecTelephoneEvent8000.Name && c.SampleRate == 8000 {
			if !s.hasTE {
				s.dtmfPT = c.PayloadType
				s.hasTE = true
			}
			continue
		}
		if !audioSet && (c.Name == "pcmu" || c.Name == "pcma") {
			s.pt = c.PayloadType
			s.ulaw = c.Name == "pcmu"
			audioSet = true
		}
	}
	s.applyDeafLocked()
}

// setDeaf makes the leg deaf (on) or hearing again.
func (s *sender) setDeaf(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deaf = on
	s.applyDeafLocked()
}

// applyDeafLocked brings the RTP socket's filter in line with s.deaf and
// the negotiated telephone-event payload type.
func (s *sender) applyDeafLocked() {
	if s.sess == nil || s.stopped {
		return
	}
	pt := -1
	if s.hasTE {
		pt = int(s.dtmfPT)
	}
	if s.deaf == s.deafOn && s.sess == s.deafSess && (!s.deaf || pt == s.deafPT) {
		return
	}
	if err := setDeaf(s.sess, s.deaf, pt); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return // the leg is ending
		}
		// The leg keeps reading what its phone sends, as it did before.
		s.ch.core.noisy.Warn("cannot filter a leg's RTP", "call_id", s.ch.callID, "err", err)
		return
	}
	s.deafOn, s.deafPT, s.deafSess = s.deaf, pt, s.sess
}

// codec reports the leg's audio encoding for the reader side.
func (s *sender) codec() (ulaw bool, dtmfPT uint8, hasTE bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ulaw, s.dtmfPT, s.hasTE
}

func (s *sender) setMuted(m bool) {
	s.mu.Lock()
	s.muted = m
	s.mu.Unlock()
}

// writeLocked sends one packet. samples advances the timestamp after it.
func (s *sender) writeLocked(payload []byte, pt uint8, samples uint32, marker bool, ts uint32, fixedTS bool) {
	if s.prepareLocked(payload, pt, samples, marker, ts, fixedTS) {
		s.sendLocked()
	}
}

// prepareLocked makes s.pkt the next packet (sequence, timestamp, marker)
// and reports whether it is to be sent at all.
func (s *sender) prepareLocked(payload []byte, pt uint8, samples uint32, marker bool, ts uint32, fixedTS bool) bool {
	if s.dm == nil || s.muted || s.stopped {
		return false
	}
	now := time.Now()
	if !fixedTS && !s.lastWrite.IsZero() {
		// Keep the media clock honest across source switches: a pause shows
		// up as a timestamp jump with the marker set.
		if gap := now.Sub(s.lastWrite); gap > 60*time.Millisecond {
			s.ts += uint32(gap/time.Millisecond) * 8
			marker = true
		}
	}
	s.lastWrite = now
	if !fixedTS {
		ts = s.ts
	}
	s.pkt.Header = rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    pt,
		SequenceNumber: s.seq,
		Timestamp:      ts,
		SSRC:           s.ssrc,
	}
	s.pkt.Payload = payload
	s.seq++
	if !fixedTS {
		s.ts += samples
	}
	return true
}

// sendLocked writes s.pkt through the leg's own socket.
func (s *sender) sendLocked() {
	w := s.dm.RTPPacketWriter
	if w == nil {
		return
	}
	if s.raw && s.ssrcShown && s.sess != nil {
		// The hot path: marshal into our own buffer and write it, skipping
		// diago's per-packet session bookkeeping. diago sends no RTCP of
		// its own; the first packet of an SSRC still goes through it so
		// that its RTCP reader knows our SSRC when receiver reports come.
		if cap(s.wbuf) < 12+len(s.pkt.Payload) {
			s.wbuf = make([]byte, 0, 12+max(len(s.pkt.Payload), 320))
		}
		n, err := s.pkt.MarshalTo(s.wbuf[:cap(s.wbuf)])
		if err == nil {
			_, err = s.sess.WriteRTPRaw(s.wbuf[:n])
		}
		if err != nil {
			s.ch.core.metrics.rtpWriteErrors.Inc()
		}
		return
	}
	if err := w.Writer().WriteRTP(&s.pkt); err != nil {
		s.ch.core.metrics.rtpWriteErrors.Inc()
		return
	}
	s.ssrcShown = true
}

// writeAudio sends one frame of G.711 audio encoded as ulaw (true) or alaw,
// transcoding to the leg's codec when they differ.
func (s *sender) writeAudio(payload []byte, ulaw bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ulaw != s.ulaw {
		if cap(s.scratch) < len(payload) {
			s.scratch = make([]byte, len(payload))
		}
		buf := s.scratch[:len(payload)]
		if ulaw {
			audio.UlawToAlaw(payload, buf)
		} else {
			audio.AlawToUlaw(payload, buf)
		}
		payload = buf
	}
	s.writeLocked(payload, s.pt, uint32(len(payload)), false, 0, false)
}

// MusicFrame implements audio.Listener: one 20 ms frame from the hub. With
// a music batch (musicbatch.go) the packet joins the shard's batch, sent
// with the others at the end of the tick; otherwise it goes out at once.
func (s *sender) MusicFrame(f audio.Frame, shard audio.Shard) {
	if s.Mode() != modeMusic {
		return
	}
	mb, _ := shard.(*musicBatch)
	if s.musicFrame(f, mb) && mb.batch.Len() >= rawudp.MaxPerCall {
		// Send what is ready instead of holding it to the end of the
		// tick: the first listeners' packets leave first.
		mb.AfterTick()
	}
}

// musicFrame sends or queues one music frame and reports whether it was
// queued in mb.
func (s *sender) musicFrame(f audio.Frame, mb *musicBatch) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := f.Alaw
	if s.ulaw {
		p = f.Ulaw
	}
	if !s.prepareLocked(p, s.pt, uint32(len(p)), false, 0, false) {
		return false
	}
	if mb != nil && s.batchOK && s.ssrcShown {
		n, err := s.pkt.Header.MarshalTo(s.hdr[:])
		if err == nil && mb.batch.Add(s.src, s.dst, s.hdr[:n], p) {
			return true
		}
	}
	s.sendLocked()
	return false
}

// forward carries one packet of the bridged peer's audio to this leg.
func (s *sender) forward(payload []byte, ulaw bool) {
	if s.Mode() != modeBridge {
		return
	}
	s.writeAudio(payload, ulaw)
}

// forwardDTMF relays one RFC 4733 packet from the peer, keeping one output
// timestamp per event as the RFC requires.
func (s *sender) forwardDTMF(payload []byte, inTS uint32, event byte) {
	if s.Mode() != modeBridge {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasTE {
		return
	}
	marker := false
	if !s.teSeen || inTS != s.teInTS || event != s.teEvent {
		// A new event starts now on our media clock: advance the clock by
		// the time since the last packet, so that events that follow each
		// other without audio between them still get distinct timestamps.
		if !s.lastWrite.IsZero() {
			s.ts += uint32(time.Since(s.lastWrite)/time.Millisecond) * 8
		}
		if s.teSeen && s.ts == s.teOutTS {
			s.ts += 160
		}
		s.teSeen = true
		s.teInTS = inTS
		s.teEvent = event
		s.teOutTS = s.ts
		marker = true
	}
	s.writeLocked(payload, s.dtmfPT, 0, marker, s.teOutTS, true)
	if len(payload) >= 4 && payload[1]&0x80 != 0 {
		// End of the event: audio resumes after its duration.
		dur := uint32(payload[2])<<8 | uint32(payload[3])
		if next := s.teOutTS + dur; int32(next-s.ts) > 0 {
			s.ts = next
		}
	}
}

// music turns music on hold on or off.
func (s *sender) music(on bool, class string) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	s.wantMusic = on
	s.musicClass = class
	switch {
	case on && s.Mode() == modePrompt:
		// Resumes after the prompt.
	case on:
		s.startMusicLocked()
	case !on && s.Mode() == modeMusic:
		s.stopMusicLocked()
		if s.ch.peer.Load() != nil {
			s.mode.Store(int32(modeBridge))
		} else {
			s.mode.Store(int32(modeNone))
		}
	}
}

func (s *sender) startMusicLocked() {
	hub := s.ch.core.hubs.Get(s.musicClass)
	if s.hub != nil && s.hub != hub {
		s.hub.Remove(s)
	}
	s.hub = hub
	s.mode.Store(int32(modeMusic))
	hub.Add(s)
	s.setDeaf(true)
}

func (s *sender) stopMusicLocked() {
	if s.hub != nil {
		s.hub.Remove(s)
		s.hub = nil
		s.setDeaf(false)
	}
}

// bridged switches the output to the peer's audio.
func (s *sender) bridged() {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	s.wantMusic = false
	s.stopMusicLocked()
	if s.Mode() != modePrompt {
		s.mode.Store(int32(modeBridge))
	}
}

// peerGone falls back to music (if asked for) or silence.
func (s *sender) peerGone(_ *channel) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if s.Mode() != modeBridge {
		return
	}
	if s.wantMusic {
		s.startMusicLocked()
		return
	}
	s.mode.Store(int32(modeNone))
}

// restoreLocked picks the source after a prompt ends.
func (s *sender) restoreLocked() {
	switch {
	case s.wantMusic:
		s.startMusicLocked()
	case s.ch.peer.Load() != nil:
		s.mode.Store(int32(modeBridge))
	default:
		s.mode.Store(int32(modeNone))
	}
}

// stop ends every output for good.
func (s *sender) stop() {
	s.ctl.Lock()
	s.mu.Lock()
	s.stopped = true // and the socket is closing: no filter to remove
	s.mu.Unlock()
	s.stopMusicLocked()
	if s.promptStop != nil {
		close(s.promptStop)
		s.promptStop = nil
	}
	s.mode.Store(int32(modeNone))
	s.ctl.Unlock()
}

// udpAddrPort converts a *net.UDPAddr, IPv4 in IPv6 form included.
func udpAddrPort(a *net.UDPAddr) netip.AddrPort {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}
