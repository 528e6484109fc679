package core

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The SIP UDP socket's queue. One goroutine of sipgo reads and parses
// every datagram; when the machine cannot keep up, datagrams wait in the
// socket's receive queue (8 MiB: udpReceiveBuffer) — at 1,000 cycles/s
// offered to this 2-core machine, 3,000–5,000 of them, half a second and
// more. Everything waits there: the BYE that ends a call, the ACK that
// confirms one, the phones' retransmissions of what they think was lost.
// A new call admitted then only adds to the wait of every call already
// going, and a call whose INVITE waited T1 (500 ms) has been retransmitted
// already: at 2,000/s offered the machine spent itself on retransmissions
// and 503s and completed 2 % of the cycles.
//
// So the core notes how long each datagram waited in the queue (the
// kernel's receive timestamp, SO_TIMESTAMPNS) and admission control
// refuses new calls while the queue stands longer than
// Admission.MaxQueueDelay: the queue drains into the calls already going,
// and new calls get a quick 503 instead of a slow failure.
//
// "Stands" as in CoDel (RFC 8289): the least wait of every datagram read
// in the last queueInterval and since. A burst — a phone's REGISTER storm,
// a garbage collection, the scheduler giving another goroutine the core
// for a few milliseconds — leaves some datagrams waiting and is gone in
// the next; a standing queue leaves none without a wait. On the last
// datagram's wait alone, a threshold low enough to hold the machine at
// its capacity under twice its load refused calls at 70 % of it.

// timedConn is the SIP UDP socket as sipgo reads it: ReadFrom also notes
// how long the datagram waited in the socket's receive queue.
type timedConn struct {
	*net.UDPConn
	oob      []byte       // one reader at a time: sipgo's read loop
	standing atomic.Int64 // the standing queue's wait, ns
	observe  func(time.Duration)
	direct   *directWriter // nil: writes go Go's way (sipwrite.go)
	// reading is closed when sipgo first reads: it has put the socket in
	// its connection pool by then, and requests sent from the listener's
	// address can find it (sipgo would otherwise bind a second socket to
	// that address, and fail).
	reading     chan struct{}
	readingOnce sync.Once

	// The reader's own: the least wait of the window before this one
	// and of this one so far, and when this one began.
	prevMin, curMin time.Duration
	winStart        time.Time
}

// queueInterval is the window over which a queue must not drain for it to
// count as standing.
const queueInterval = 100 * time.Millisecond

// newTimedConn asks the kernel for receive timestamps on uc. When it
// cannot have them, ReadFrom reports no wait.
func newTimedConn(uc *net.UDPConn, observe func(time.Duration)) *timedConn {
	t := &timedConn{UDPConn: uc, observe: observe, direct: newDirectWriter(uc), reading: make(chan struct{})}
	rc, err := uc.SyscallConn()
	if err != nil {
		return t
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil {
			t.oob = make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
		}
	})
	return t
}

// ReadFrom reads one datagram like net.UDPConn.ReadFrom and notes its
// queue wait.
func (t *timedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	t.readingOnce.Do(func() { close(t.reading) })
	if t.oob == nil {
		return t.UDPConn.ReadFrom(b)
	}
	n, oobn, _, addr, err := t.ReadMsgUDP(b, t.oob)
	if err != nil {
		if addr == nil {
			return n, nil, err // a nil *UDPAddr must not become a non-nil net.Addr
		}
		return n, addr, err
	}
	if at, ok := receivedAt(t.oob[:oobn]); ok {
		now := time.Now()
		wait := max(now.Sub(at), 0) // the wall clock may step
		t.note(wait, now)
		if t.observe != nil {
			t.observe(wait)
		}
	}
	return n, addr, nil
}

// note takes the queue wait of a datagram read at now into the standing
// queue's.
func (t *timedConn) note(wait time.Duration, now time.Time) {
	switch {
	case now.Sub(t.winStart) >= 2*queueInterval: // quiet a while: no window before
		t.prevMin, t.curMin, t.winStart = wait, wait, now
	case now.Sub(t.winStart) >= queueInterval:
		t.prevMin, t.curMin, t.winStart = t.curMin, wait, now
	default:
		t.curMin = min(t.curMin, wait)
	}
	t.standing.Store(int64(min(t.prevMin, t.curMin)))
}

// queueWait is the wait of the standing queue: the least of every
// datagram read in the last queueInterval or more.
func (t *timedConn) queueWait() time.Duration { return time.Duration(t.standing.Load()) }

// receivedAt finds the SCM_TIMESTAMPNS control message in oob, without
// allocating.
func receivedAt(oob []byte) (time.Time, bool) {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l-hdr >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[hdr]))
			return time.Unix(ts.Unix()), true
		}
		next := unix.CmsgSpace(l - hdr)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return time.Time{}, false
}
