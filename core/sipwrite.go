package core

import (
	"errors"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// The SIP UDP socket's writes. Go serialises the writes on one descriptor
// (the descriptor's write lock, internal/poll.fdMutex): every response and
// request the core sends over UDP took turns on it, and past the machine's
// capacity the turn-taking was the queue — at 2,000 cycles/s offered,
// ~2,700 goroutines parked on that lock while the machine was not full,
// each handing the lock to the next through the scheduler. The kernel
// needs no such turn for UDP (sendto of one datagram takes no socket lock
// unless corked), so the core sends with sendto(2) on a duplicate of the
// descriptor, from any number of goroutines at once. A send the kernel
// cannot take at once (EAGAIN: the send buffer full) goes through Go's
// path, which waits for room in the poller. Only IPv4 sockets and
// destinations take the direct path; anything else goes Go's way.

// directWriter sends datagrams with sendto(2) on its own descriptor of a
// socket.
type directWriter struct {
	mu sync.RWMutex // read-held by each send, write-held by close
	fd int          // -1: closed or none
}

// newDirectWriter duplicates the descriptor of uc when it is an IPv4
// socket; otherwise the writer sends nothing directly.
func newDirectWriter(uc *net.UDPConn) *directWriter {
	w := &directWriter{fd: -1}
	la, ok := uc.LocalAddr().(*net.UDPAddr)
	if !ok || la.IP.To4() == nil {
		return w
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return w
	}
	_ = rc.Control(func(fd uintptr) {
		if d, err := unix.Dup(int(fd)); err == nil {
			unix.CloseOnExec(d)
			w.fd = d
		}
	})
	return w
}

// send sends b to addr if it can directly; ok false: send it Go's way.
func (w *directWriter) send(b []byte, addr net.Addr) (n int, ok bool, err error) {
	ua, isUDP := addr.(*net.UDPAddr)
	if !isUDP {
		return 0, false, nil
	}
	ip4 := ua.IP.To4()
	if ip4 == nil || ua.Port <= 0 || ua.Port > 0xffff {
		return 0, false, nil
	}
	sa := unix.SockaddrInet4{Port: ua.Port}
	copy(sa.Addr[:], ip4)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.fd < 0 {
		return 0, false, nil
	}
	for {
		err = unix.Sendto(w.fd, b, unix.MSG_DONTWAIT, &sa)
		switch {
		case err == nil:
			return len(b), true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, false, nil
		}
		return 0, true, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: err}
	}
}

// close closes the duplicate descriptor once no send is using it.
func (w *directWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		_ = unix.Close(w.fd)
		w.fd = -1
	}
}

// WriteTo sends one datagram like net.UDPConn.WriteTo, without waiting
// for the other writers of the socket.
func (t *timedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if t.direct != nil {
		if n, ok, err := t.direct.send(b, addr); ok {
			return n, err
		}
	}
	return t.UDPConn.WriteTo(b, addr)
}

// Close closes the socket and the writer's descriptor of it.
func (t *timedConn) Close() error {
	if t.direct != nil {
		t.direct.close()
	}
	return t.UDPConn.Close()
}
