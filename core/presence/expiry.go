package presence

// Expiry: subscription deadlines in one deadline.Queue, one goroutine (Run).

import (
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
	for _, sb := range s.expiry.PopDue(now) {
		s.removeLocked(sb)
		e := s.entityLocked(sb.ent)
		s.metrics.expired.Inc()
		s.queueLocked(sb, e.state, e.known, "timeout")
	}
	next, _ := s.expiry.Next()
	return next
}
