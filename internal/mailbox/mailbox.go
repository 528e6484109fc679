// Package mailbox is the one hand-off between code that must never block
// (a NATS delivery callback, a state-store observer) and the goroutine that
// does the work: an unbounded FIFO with a wake-up channel. Put never
// blocks; the consumer waits on Wake and takes everything queued at once.
package mailbox

import "sync"

// Box is an unbounded FIFO of T with a wake-up signal. The zero value is
// not usable: make one with New. Safe for concurrent use.
type Box[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	wake   chan struct{}
	// draining: a Drain is delivering.
	draining bool
}

// New returns an empty, open box.
func New[T any]() *Box[T] { return &Box[T]{wake: make(chan struct{}, 1)} }

// Put queues v and wakes the consumer; after Close it drops v and reports
// false.
func (b *Box[T]) Put(v T) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	b.items = append(b.items, v)
	b.mu.Unlock()
	b.signal()
	return true
}

// Take returns everything queued, oldest first, and empties the box.
func (b *Box[T]) Take() []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	items := b.items
	b.items = nil
	return items
}

// First returns the oldest queued item without taking it (ok false: the
// box is empty), for a consumer that measures its backlog.
func (b *Box[T]) First() (v T, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) == 0 {
		return v, false
	}
	return b.items[0], true
}

// Wake receives a value after a Put or a Close: the consumer then Takes.
// One value may stand for many Puts (and for none left, if the consumer
// took them meanwhile).
func (b *Box[T]) Wake() <-chan struct{} { return b.wake }

// Drain is the other way to consume a box, for producers that deliver
// themselves (no consumer goroutine): the first caller to find no Drain
// under way hands every queued item to fn, oldest first, including those
// Put while it delivers, without holding the box's lock during fn; a
// concurrent caller returns at once, its items delivered by the first.
// Items are thus delivered one at a time, in the order they were Put.
func (b *Box[T]) Drain(fn func(T)) {
	b.mu.Lock()
	if b.draining {
		b.mu.Unlock()
		return
	}
	b.draining = true
	defer func() {
		b.mu.Lock()
		b.draining = false
		b.mu.Unlock()
	}()
	for len(b.items) > 0 {
		v := b.items[0]
		var zero T
		b.items[0] = zero
		b.items = b.items[1:]
		b.mu.Unlock()
		fn(v)
		b.mu.Lock()
	}
	b.items = nil
	b.mu.Unlock()
}

// Close refuses further Puts; what is queued can still be taken.
func (b *Box[T]) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
}

// Closed reports whether Close was called.
func (b *Box[T]) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Box[T]) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
