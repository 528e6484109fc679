package deadline

import (
	"context"
	"sync"
	"time"
)

// Scheduler fires a callback for each key when its due time comes: a Queue
// with a lock and the loop that serves it. Schedule and Cancel are safe for
// concurrent use; Run serves the timer.
type Scheduler struct {
	mu   sync.Mutex
	q    Queue[string]
	wake chan struct{}
}

// NewScheduler returns an empty Scheduler.
func NewScheduler() *Scheduler { return &Scheduler{wake: make(chan struct{}, 1)} }

// Schedule sets key to fire at due, replacing any earlier deadline of key.
// A due time in the past fires at once.
func (s *Scheduler) Schedule(key string, due time.Time) {
	s.mu.Lock()
	first := s.q.Set(key, due)
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Cancel forgets key; it reports whether key was pending.
func (s *Scheduler) Cancel(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// No wake-up: at worst the timer fires once early and finds nothing due.
	return s.q.Remove(key)
}

// Due returns key's deadline and whether it is pending.
func (s *Scheduler) Due(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.Due(key)
}

// Len is the number of pending keys.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.Len()
}

// Run calls fire with each key whose deadline has come, in due order, on
// the calling goroutine, until ctx ends. A fired key is no longer pending;
// fire must not block for long (start the work elsewhere).
func (s *Scheduler) Run(ctx context.Context, fire func(key string)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		ready := s.q.PopDue(now)
		wait := time.Hour // idle: only a Schedule wakes us
		if next, ok := s.q.Next(); ok {
			wait = next.Sub(now)
		}
		s.mu.Unlock()
		for _, k := range ready {
			fire(k)
		}
		if len(ready) > 0 {
			continue // fire may have taken a while; look again
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}
