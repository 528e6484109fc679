package core

import (
	"strings"
	"sync"
	"time"
)

// admitted remembers the Call-IDs of the new INVITEs that passed the soft
// overload limits a moment ago, so that the same call's next INVITE — the
// one with the credentials, after the 401 challenge — passes them too.
// Without it, a call taken when the queue was short was refused at its
// second INVITE when the queue had grown meanwhile: at four times the
// machine's park+retrieve capacity, 45 % of the challenged calls were
// refused after their challenge, the work on them wasted. A call refused
// is refused at its first INVITE, before anything is spent on it.
//
// Entries come in time order, so they leave oldest first from a ring;
// the set holds at most admittedMax of them (the oldest go first past
// that: the memory of an INVITE flood is bounded, and the worst it buys
// a stranger is a 401 instead of a 503).
type admitted struct {
	mu    sync.Mutex
	ttl   time.Duration
	at    map[string]time.Time
	order []string // ring of Call-IDs, oldest at head
	head  int
	n     int
	// peak is the most Call-IDs held since the map was made.
	peak int
}

// A phone answers a challenge within a round trip, and under overload the
// queue's wait; at 2,000 new INVITEs a second the bound keeps 4 s of them.
const (
	admittedTTL = 4 * time.Second
	admittedMax = 1 << 13
	// admittedSmall is the size past which an emptied set gets a new map.
	admittedSmall = 64
)

func newAdmitted(ttl time.Duration, max int) *admitted {
	return &admitted{ttl: ttl, at: make(map[string]time.Time), order: make([]string, max)}
}

// add remembers callID as admitted at now.
func (a *admitted) add(callID string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(now)
	if _, ok := a.at[callID]; ok {
		a.at[callID] = now // keeps its place in the ring: it leaves a little early
		return
	}
	if a.n == len(a.order) {
		a.popLocked()
	}
	callID = strings.Clone(callID) // not a view of the request it came in
	a.order[(a.head+a.n)%len(a.order)] = callID
	a.n++
	a.at[callID] = now
	a.peak = max(a.peak, a.n)
}

// has reports whether callID was admitted within the TTL.
func (a *admitted) has(callID string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[callID]
	return ok && now.Sub(t) <= a.ttl
}

// len is the number of Call-IDs held.
func (a *admitted) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// expire forgets the Call-IDs past the TTL; Run calls it every TTL, so
// that a burst's Call-IDs do not stay once new calls stop coming.
func (a *admitted) expire(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(now)
}

func (a *admitted) expireLocked(now time.Time) {
	for a.n > 0 {
		if t, ok := a.at[a.order[a.head]]; ok && now.Sub(t) <= a.ttl {
			return
		}
		a.popLocked()
	}
	if a.peak > admittedSmall {
		// A Go map keeps the room of its largest size: after a burst of
		// thousands of calls, a fresh one gives it back.
		a.at, a.peak = make(map[string]time.Time), 0
	}
}

func (a *admitted) popLocked() {
	id := a.order[a.head]
	delete(a.at, id)
	a.order[a.head] = ""
	a.head = (a.head + 1) % len(a.order)
	a.n--
}
