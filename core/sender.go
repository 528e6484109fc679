package core

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/core/rawudp"
	"github.com/callpark/callpark/core/rtp"
	"github.com/callpark/callpark/core/sdp"
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

	mu   sync.Mutex
	conn *rtp.Conn
	// batchOK: music may go out through the core's raw socket, from src
	// (the leg's RTP address) to dst (the far end's), both IPv4, the leg
	// not encrypted.
	batchOK   bool
	src, dst  netip.AddrPort
	wbuf      [rtp.HeaderLen + 320]byte // one marshalled packet
	ssrc      uint32
	seq       uint16
	ts        uint32
	lastWrite time.Time
	scratch   []byte
	// The packet being sent (prepareLocked).
	pktPT     uint8
	pktMarker bool
	pktTS     uint32
	pktSeq    uint16
	// Negotiated codecs; ulaw false means PCMA. codecSet is false until
	// the offer/answer is done.
	codec    sdp.Codec
	codecSet bool
	// muted while the phone holds (inactive/sendonly) or after stop.
	muted   bool
	stopped bool
	// deaf: the leg plays music and its phone's audio is dropped by the
	// kernel (rtp.Conn.SetDeaf).
	deaf bool
	// DTMF relay state.
	teInTS  uint32
	teOutTS uint32
	teEvent byte
	teSeen  bool
}

func (s *sender) Mode() outMode { return outMode(s.mode.Load()) }

// attach binds the sender to the leg's RTP endpoint.
func (s *sender) attach(conn *rtp.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = conn
	s.ssrc = rand.Uint32()
	s.seq = uint16(rand.Uint32())
	s.ts = rand.Uint32()
}

// connection is the leg's RTP endpoint (nil before attach).
func (s *sender) connection() *rtp.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// setCodec takes the codecs of an offer/answer (the far end's address may
// have changed with it).
func (s *sender) setCodec(c sdp.Codec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codec, s.codecSet = c, true
	if s.conn == nil {
		return
	}
	s.src, s.dst = s.conn.Local(), s.conn.Remote()
	s.batchOK = !s.conn.Secured() && s.ch.core.music != nil && s.src.Addr().Is4() && s.dst.Addr().Is4() &&
		s.dst.Port() != 0 && !s.dst.Addr().IsUnspecified()
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
	if s.conn == nil || s.stopped {
		return
	}
	pt := -1
	if s.codec.HasDTMF {
		pt = int(s.codec.DTMF)
	}
	if err := s.conn.SetDeaf(s.deaf, pt); err != nil {
		if errors.Is(err, rtp.ErrClosed) {
			return // the leg is ending
		}
		// The leg keeps reading what its phone sends.
		s.ch.core.noisy.Warn("cannot filter a leg's RTP", "call_id", s.ch.callID, "err", err)
	}
}

// codecs reports the leg's audio encoding for the reader side.
func (s *sender) codecs() sdp.Codec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codec
}

func (s *sender) setMuted(m bool) {
	s.mu.Lock()
	s.muted = m
	s.mu.Unlock()
}

// writeLocked sends one packet. samples advances the timestamp after it.
func (s *sender) writeLocked(payload []byte, pt uint8, samples uint32, marker bool, ts uint32, fixedTS bool) {
	if s.prepareLocked(pt, samples, marker, ts, fixedTS) {
		s.sendLocked(payload)
	}
}

// prepareLocked makes the header fields of the next packet (sequence,
// timestamp, marker) and reports whether it is to be sent at all.
func (s *sender) prepareLocked(pt uint8, samples uint32, marker bool, ts uint32, fixedTS bool) bool {
	if s.conn == nil || !s.codecSet || s.muted || s.stopped {
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
	s.pktPT, s.pktMarker, s.pktSeq, s.pktTS = pt, marker, s.seq, ts
	s.seq++
	if !fixedTS {
		s.ts += samples
	}
	return true
}

// sendLocked writes the prepared packet with payload through the leg's
// own socket.
func (s *sender) sendLocked(payload []byte) {
	if len(payload) > len(s.wbuf)-rtp.HeaderLen {
		payload = payload[:len(s.wbuf)-rtp.HeaderLen]
	}
	rtp.PutHeader(s.wbuf[:], s.pktPT, s.pktMarker, s.pktSeq, s.pktTS, s.ssrc)
	n := rtp.HeaderLen + copy(s.wbuf[rtp.HeaderLen:], payload)
	if err := s.conn.Write(s.wbuf[:n]); err != nil && !errors.Is(err, rtp.ErrClosed) {
		s.ch.core.metrics.rtpWriteErrors.Inc()
	}
}

// writeAudio sends one frame of G.711 audio encoded as ulaw (true) or alaw,
// transcoding to the leg's codec when they differ.
func (s *sender) writeAudio(payload []byte, ulaw bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ulaw != s.codec.Ulaw {
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
	s.writeLocked(payload, s.codec.PT, uint32(len(payload)), false, 0, false)
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
	if s.codec.Ulaw {
		p = f.Ulaw
	}
	if !s.prepareLocked(s.codec.PT, uint32(len(p)), false, 0, false) {
		return false
	}
	if mb != nil && s.batchOK {
		rtp.PutHeader(s.wbuf[:], s.pktPT, s.pktMarker, s.pktSeq, s.pktTS, s.ssrc)
		if mb.batch.Add(s.src, s.dst, s.wbuf[:rtp.HeaderLen], p) {
			return true
		}
	}
	s.sendLocked(p)
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
	if !s.codec.HasDTMF {
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
	s.writeLocked(payload, s.codec.DTMF, 0, marker, s.teOutTS, true)
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
