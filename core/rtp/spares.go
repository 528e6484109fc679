package rtp

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spare sockets. A leg's RTP and RTCP sockets outlive it: once closed they
// rest, still registered with their poller, which drops whatever still
// arrives (the last packets the phone sent before its BYE), and a leg
// opened after the rest takes them instead of binding new ones. A leg cost
// twelve system calls (two sockets, two binds, two getsocknames, a
// setsockopt and an epoll registration to open it; an eventfd write, an
// epoll removal and two closes to end it): 8 % of the process's CPU at 700
// park+retrieve cycles a second, three legs a cycle. A reused pair costs
// none.
//
// Pairs are reused oldest first and never before DefaultQuiet: a stray
// packet of a leg's phone cannot reach the next leg on its ports. Binding
// port 0 gives no such guarantee: the kernel hands a freed port out again
// at random, at 3,000 legs a second one new leg in five on a port freed
// less than a second before.
//
// Spares never take descriptors legs need. The engine counts three per leg
// (its two sockets and a share of SIP's, as admission control does) and
// two per spare against the open-file limit less 512; a leg that ends
// when that room is short closes its sockets, and a leg opened when it is
// short takes the oldest spare whatever its rest.
//
// A pair that waits DefaultSpareIdle without a leg to take it (the load is
// gone) is closed, within a quarter of that.

// DefaultSpareIdle is how long a spare pair waits for a new leg before
// it is closed.
const DefaultSpareIdle = 30 * time.Second

// DefaultQuiet is how long a spare pair rests before a new leg takes it.
const DefaultQuiet = time.Second

// DefaultSpares bounds the pairs kept (8,192 descriptors): at 1,000
// park+retrieve cycles a second, three legs each, 3,000 pairs rest.
const DefaultSpares = 4096

// descriptorRoom is the open-file limit less 512 for everything else.
func descriptorRoom() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 0
	}
	return max(0, int(min(rl.Cur, 1<<22))-512)
}

// spares is the engine's pairs at rest, oldest first.
type spares struct {
	mu    sync.Mutex
	q     []resting
	head  int
	max   int
	quiet time.Duration
	// idleAfter is how long a pair waits before it is closed.
	idleAfter time.Duration
	room      int // descriptors for legs (3 each) and spares (2 each)
}

// resting is a spare pair: a closed conn still registered with its
// poller, and since when.
type resting struct {
	c     *Conn
	since time.Time
}

// fits reports whether legs and pairs spare pairs fit in the room: three
// descriptors a leg, two a pair.
func (s *spares) fits(legs, pairs int) bool { return 3*legs+2*pairs <= s.room }

// keep takes c's sockets as a spare pair and reports whether it did; c
// is closed. A leg that was deaf has its filter removed first. The pair
// is registered with its poller under a conn of its own that holds
// nothing else: c, its receiver (the whole call behind it) and its SRTP
// contexts are not kept alive by a spare. Closes racing each other may
// keep a few more than max.
func (s *spares) keep(c *Conn) bool {
	if n := s.len(); n >= s.max || !s.fits(c.e.Legs(), n+1) {
		return false
	}
	if c.deaf {
		err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return false
		}
	}
	spare := &Conn{e: c.e, p: c.p, fd: c.fd, rtcp: c.rtcp, local: c.local}
	spare.closed.Store(true)
	p := c.p
	p.mu.Lock()
	if p.stopped {
		// The stopped poller closes every socket of its map, c's too.
		p.mu.Unlock()
		return true
	}
	p.conns[int32(c.fd)] = spare
	p.mu.Unlock()
	s.mu.Lock()
	s.q = append(s.q, resting{spare, time.Now()})
	s.mu.Unlock()
	return true
}

// take returns the oldest spare that has rested long enough, or nil;
// when short of room (short), the oldest whatever its rest.
func (s *spares) take(now time.Time, short bool) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.q) || (!short && now.Sub(s.q[s.head].since) < s.quiet) {
		return nil
	}
	c := s.q[s.head].c
	s.q[s.head] = resting{}
	s.head++
	switch {
	case s.head == len(s.q):
		s.q, s.head = s.q[:0], 0
		if cap(s.q) > 4*s.max {
			s.q = nil
		}
	case s.head > 256 && s.head > len(s.q)/2:
		s.q = append(s.q[:0], s.q[s.head:]...)
		s.head = 0
	}
	return c
}

// expire closes the pairs that have waited s.idleAfter, every quarter of
// that, until ctx is done.
func (s *spares) expire(ctx context.Context) {
	t := time.NewTicker(max(s.idleAfter/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, c := range s.idle(now) {
				c.p.release(c)
			}
		}
	}
}

// idle removes and returns the pairs that have waited s.idleAfter.
func (s *spares) idle(now time.Time) []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var old []*Conn
	for s.head < len(s.q) && now.Sub(s.q[s.head].since) >= s.idleAfter {
		old = append(old, s.q[s.head].c)
		s.q[s.head] = resting{}
		s.head++
	}
	if s.head == len(s.q) {
		s.q, s.head = nil, 0
	}
	return old
}

// len returns the number of spare pairs.
func (s *spares) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q) - s.head
}

// reuse makes a new leg of spare's sockets, or returns nil when its
// poller has stopped (which closes the spare's sockets).
func (e *Engine) reuse(spare *Conn, r Receiver) *Conn {
	c := &Conn{fd: spare.fd, rtcp: spare.rtcp, local: spare.local, recv: r, e: e, p: spare.p}
	p := spare.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.conns[int32(c.fd)] = c
	e.stats.Reused.Add(1)
	return c
}
