package core

import (
	"fmt"
	"time"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/events"
)

// play queues prompts on a leg that is up. Music and bridged audio pause
// while it plays and come back after; a new play replaces a running one.
func (ch *channel) play(id string, prompts []string, hangupAfter bool) error {
	var pcm []int16
	for _, name := range prompts {
		p, ok := ch.core.sounds.Prompt(name)
		if !ok {
			return fmt.Errorf("unknown prompt %q", name)
		}
		pcm = append(pcm, p...)
		// A short pause between words reads better than a run-on.
		pcm = append(pcm, make([]int16, 8*60)...)
	}
	s := &ch.out
	s.mu.Lock()
	ulaw, pt := s.codec.Ulaw, s.codec.PT
	s.mu.Unlock()
	var enc []byte
	if ulaw {
		enc = audio.EncodeUlaw(pcm, nil)
	} else {
		enc = audio.EncodeAlaw(pcm, nil)
	}

	s.ctl.Lock()
	if s.promptStop != nil {
		close(s.promptStop)
	}
	s.stopMusicLocked()
	s.mode.Store(int32(modePrompt))
	stop := make(chan struct{})
	s.promptStop = stop
	s.ctl.Unlock()

	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		interrupted := false
	loop:
		for off := 0; off < len(enc); off += 160 {
			end := min(off+160, len(enc))
			s.mu.Lock()
			if s.Mode() == modePrompt {
				s.writeLocked(enc[off:end], pt, uint32(end-off), off == 0, 0, false)
			}
			s.mu.Unlock()
			select {
			case <-t.C:
			case <-stop:
				interrupted = true
				break loop
			case <-ch.ctx.Done():
				interrupted = true
				break loop
			}
		}
		s.ctl.Lock()
		if s.promptStop == stop {
			s.promptStop = nil
			s.restoreLocked()
		}
		s.ctl.Unlock()
		e := ch.event(events.CallPlaybackDone)
		e.Playback = id
		if interrupted {
			e.Reason = "stopped"
		}
		ch.core.publish(e)
		if hangupAfter && ch.ctx.Err() == nil {
			ch.hangup(0, "")
		}
	}()
	return nil
}
