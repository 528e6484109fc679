// Package retrieval keeps the deadlines of automatic retrieval: when each
// parked call is due to ring back its parker.
//
// Like nomad's delay heap, a Scheduler holds every pending deadline in one
// min-heap ordered by due time, served by one goroutine with one timer that
// is always set to the earliest deadline. A pending return costs a heap slot
// and a map entry (about a hundred bytes), never a goroutine or a runtime
// timer, so tens of thousands of parked calls are cheap. The heap lives in
// memory only: its owner rebuilds it from the state at start.
package retrieval

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Scheduler fires a callback for each key when its due time comes. Schedule
// and Cancel are safe for concurrent use; Run serves the timer.
type Scheduler struct {
	mu    sync.Mutex
	items dueHeap
	byKey map[string]*item
	wake  chan struct{}
	now   func() time.Time
}

type item struct {
	key   string
	due   time.Time
	index int
}

// New returns an empty Scheduler.
func New() *Scheduler {
	return &Scheduler{byKey: map[string]*item{}, wake: make(chan struct{}, 1), now: time.Now}
}

// Schedule sets key to fire at due, replacing any earlier deadline of key.
// A due time in the past fires at once.
func (s *Scheduler) Schedule(key string, due time.Time) {
	s.mu.Lock()
	if it := s.byKey[key]; it != nil {
		it.due = due
		heap.Fix(&s.items, it.index)
	} else {
		it = &item{key: key, due: due}
		s.byKey[key] = it
		heap.Push(&s.items, it)
	}
	first := s.items[0].key == key
	s.mu.Unlock()
	if first {
		s.signal()
	}
}

// Cancel forgets key; it reports whether key was pending.
func (s *Scheduler) Cancel(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.byKey[key]
	if it == nil {
		return false
	}
	heap.Remove(&s.items, it.index)
	delete(s.byKey, key)
	// No wake-up: at worst the timer fires once early and finds nothing due.
	return true
}

// Due returns key's deadline and whether it is pending.
func (s *Scheduler) Due(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.byKey[key]; it != nil {
		return it.due, true
	}
	return time.Time{}, false
}

// Len is the number of pending keys.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run calls fire with each key whose deadline has come, in due order, on
// the calling goroutine, until ctx ends. A fired key is no longer pending;
// fire must not block for long (start the work elsewhere).
func (s *Scheduler) Run(ctx context.Context, fire func(key string)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var ready []string
		s.mu.Lock()
		now := s.now()
		for len(s.items) > 0 && !s.items[0].due.After(now) {
			it := heap.Pop(&s.items).(*item)
			delete(s.byKey, it.key)
			ready = append(ready, it.key)
		}
		wait := time.Duration(-1)
		if len(s.items) > 0 {
			wait = s.items[0].due.Sub(now)
		}
		s.mu.Unlock()
		for _, k := range ready {
			fire(k)
		}
		if len(ready) > 0 {
			continue // fire may have taken a while; look again
		}
		if wait < 0 {
			wait = time.Hour // idle: only a Schedule wakes us
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

// dueHeap is a min-heap of items by due time.
type dueHeap []*item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *dueHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*h = old[:n-1]
	return it
}
