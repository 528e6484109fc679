package presence

// Expiry: one heap of subscription deadlines, one goroutine (Run).

import (
	"container/heap"
	"context"
	"time"
)

// Run expires subscriptions until ctx ends; then NOTIFYs in flight give up.
func (s *Server) Run(ctx context.Context) error {
	defer s.cancel()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		next := s.expireLocked(time.Now())
		s.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// expireLocked ends the subscriptions due by now and returns when the next
// one is due (zero: none).
func (s *Server) expireLocked(now time.Time) time.Time {
	for s.expiry.Len() > 0 {
		it := s.expiry[0]
		if it.sb.gen != it.gen || s.subs[it.sb.key] != it.sb {
			heap.Pop(&s.expiry) // refreshed or gone since
			continue
		}
		if it.at.After(now) {
			return it.at
		}
		heap.Pop(&s.expiry)
		s.removeLocked(it.sb)
		e := s.entityLocked(it.sb.ent)
		s.metrics.expired.Inc()
		s.queueLocked(it.sb, e.state, e.known, "timeout")
	}
	return time.Time{}
}

type expiryItem struct {
	at  time.Time
	sb  *sub
	gen uint64
}

// expiryHeap orders subscriptions by expiry; stale items (refreshed or
// removed subscriptions) are skipped when they reach the top.
type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = expiryItem{}
	*h = old[:len(old)-1]
	return it
}
