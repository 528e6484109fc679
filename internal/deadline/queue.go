// Package deadline is the one deadline heap of callpark: automatic
// retrieval (when a parked call rings back), registration expiry and BLF
// subscription expiry all keep their deadlines in it.
//
// Like nomad's delay heap, a Queue holds every pending deadline in one
// min-heap ordered by due time, and whoever serves it needs one timer,
// always set to the earliest deadline. A pending deadline costs a heap slot
// and a map entry (about a hundred bytes), never a goroutine or a runtime
// timer, so tens of thousands are cheap. Queue is the bare heap for an
// owner that already has a lock and a loop (the registrar, the presence
// server); Scheduler adds both, for an owner that only wants a callback.
package deadline

import (
	"container/heap"
	"time"
)

// Queue is a min-heap of keys by due time; each key is in it at most once.
// It is not safe for concurrent use: its owner's lock guards it.
type Queue[K comparable] struct {
	items items[K]
	byKey map[K]*item[K]
}

type item[K comparable] struct {
	key   K
	due   time.Time
	index int
}

// Set makes key due at due, replacing its earlier deadline if it had one.
// It reports whether key is now the earliest: a loop waiting on the old
// earliest should look again.
func (q *Queue[K]) Set(key K, due time.Time) (earliest bool) {
	if q.byKey == nil {
		q.byKey = map[K]*item[K]{}
	}
	if it := q.byKey[key]; it != nil {
		it.due = due
		heap.Fix(&q.items, it.index)
	} else {
		it = &item[K]{key: key, due: due}
		q.byKey[key] = it
		heap.Push(&q.items, it)
	}
	return q.items[0].key == key
}

// Remove forgets key; it reports whether key was pending.
func (q *Queue[K]) Remove(key K) bool {
	it := q.byKey[key]
	if it == nil {
		return false
	}
	heap.Remove(&q.items, it.index)
	delete(q.byKey, key)
	return true
}

// Due returns key's deadline and whether it is pending.
func (q *Queue[K]) Due(key K) (time.Time, bool) {
	if it := q.byKey[key]; it != nil {
		return it.due, true
	}
	return time.Time{}, false
}

// Len is the number of pending keys.
func (q *Queue[K]) Len() int { return len(q.items) }

// Next returns the earliest deadline (ok false: none pending).
func (q *Queue[K]) Next() (due time.Time, ok bool) {
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].due, true
}

// PopDue removes and returns the keys due at or before now, earliest first.
func (q *Queue[K]) PopDue(now time.Time) []K {
	var out []K
	for len(q.items) > 0 && !q.items[0].due.After(now) {
		it := heap.Pop(&q.items).(*item[K])
		delete(q.byKey, it.key)
		out = append(out, it.key)
	}
	return out
}

// items is the container/heap of a Queue.
type items[K comparable] []*item[K]

func (h items[K]) Len() int           { return len(h) }
func (h items[K]) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h items[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *items[K]) Push(x any) {
	it := x.(*item[K])
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *items[K]) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*h = old[:n-1]
	return it
}
