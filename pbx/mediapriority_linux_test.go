package pbx_test

import (
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
	"golang.org/x/sys/unix"
)

// TestParkedMusicOnRealtimeThreads: with a media priority the process
// may have (--media-priority), a parked caller's music is paced from
// real-time threads and heard without gaps; where the kernel refuses it,
// the music is paced as without it.
func TestParkedMusicOnRealtimeThreads(t *testing.T) {
	before := realtimeThreads(t) // an earlier test's shards may still be ending
	prio := core.MediaPriority(10, slog.New(slog.DiscardHandler))
	if n := realtimeThreads(t); n > before {
		t.Fatalf("%d real-time threads after asking whether one may be, %d before", n, before)
	}
	// As callparkd runs them: a P for each real-time shard on top of the
	// cores' (a shard waiting for its tick in the kernel holds one).
	shards := runtime.GOMAXPROCS(0)
	if prio > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2 * shards))
	}
	p := pbxtest.Start(t, func(c *pbx.Config) { c.MediaPriority, c.MusicShards = 10, shards })
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")

	cc, _ := parkOwn(t, p, client, john)
	cc.ResetGap()
	cc.ExpectAudio(t, time.Second)
	if gap := cc.MaxGap(); gap > 60*time.Millisecond {
		t.Errorf("music gap of %s", gap)
	}
	rt := realtimeThreads(t)
	switch {
	case prio == 10 && rt == 0:
		t.Fatal("music plays, but no thread of the process runs real-time")
	case prio == 0 && rt > before:
		t.Fatalf("%d real-time threads where the kernel refuses the priority", rt)
	case prio == 0:
		t.Log("real-time scheduling not permitted here: paced at normal priority")
	}
}

// realtimeThreads counts the process's threads under SCHED_RR.
func realtimeThreads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil && attr.Policy == unix.SCHED_RR {
			n++
		}
	}
	return n
}
