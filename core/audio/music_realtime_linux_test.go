package audio

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpark/callpark/internal/tick"
	"golang.org/x/sys/unix"
)

// With HubOptions.Realtime, each shard ticks on a real-time thread of its
// own (where the process may have one) and still delivers fifty frames a
// second; without the permission it paces as before.
func TestHubRealtimeShardsTickOnTheirOwnThreads(t *testing.T) {
	rtErr := tick.RealtimePermitted(10)
	var states []*policyRecorder
	h := NewHubWith(Tone(300, time.Second, 0.3), nil, HubOptions{Shards: 2, Realtime: 10, NewShard: func() Shard {
		s := new(policyRecorder)
		states = append(states, s)
		return s
	}})
	var a, b counter
	h.Add(&a)
	h.Add(&b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	time.Sleep(500 * time.Millisecond)
	h.Remove(&a)
	h.Remove(&b)
	cancel()
	<-done
	for _, c := range []*counter{&a, &b} {
		if n := c.n.Load(); n < 23 || n > 27 {
			t.Errorf("%d frames in 500 ms, want 23–27", n)
		}
	}
	for i, s := range states {
		policy := s.policy.Load()
		switch {
		case rtErr == nil && policy != unix.SCHED_RR:
			t.Errorf("shard %d ticked with policy %d, want SCHED_RR", i, policy)
		case rtErr != nil && policy != 0:
			t.Errorf("shard %d ticked with policy %d without the permission (%v)", i, policy, rtErr)
		}
	}
	if rtErr != nil {
		t.Logf("real-time scheduling not permitted here: %v", rtErr)
	}
}

// policyRecorder is shard state noting the scheduling policy of the
// thread AfterTick runs on.
type policyRecorder struct{ policy atomic.Uint32 }

func (r *policyRecorder) AfterTick() {
	if attr, err := unix.SchedGetAttr(0, 0); err == nil {
		r.policy.Store(attr.Policy)
	}
}
