package core

import (
	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/core/rawudp"
)

// Music to parked calls goes out in batches: each shard of a music hub
// gets a musicBatch, its listeners queue their packet in it (from their
// own RTP address, so nothing changes for the phone), and at the end of the
// tick the batch leaves through one of the core's raw sockets (one per
// core, so that the shards' sendmmsg calls run side by side), a few
// hundred packets per call (see core/rawudp). Without CAP_NET_RAW the core
// has no raw socket and every packet goes through its leg's socket.

// musicBatch is the audio.Shard state of one hub shard.
type musicBatch struct {
	core  *Core
	batch *rawudp.Batch
}

func (c *Core) newMusicBatch() audio.Shard {
	return &musicBatch{core: c, batch: c.music.NewBatch()}
}

// AfterTick implements audio.Shard: send the tick's packets.
func (m *musicBatch) AfterTick() {
	failed, sent := m.batch.Failed, m.batch.Sent
	if err := m.batch.Flush(); err != nil {
		m.core.noisy.Warn("music batch send failed", "err", err)
	}
	if n := m.batch.Sent - sent; n > 0 {
		m.core.metrics.musicBatched.Add(float64(n))
	}
	if n := m.batch.Failed - failed; n > 0 {
		m.core.metrics.rtpWriteErrors.Add(float64(n))
	}
}
