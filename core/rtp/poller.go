package rtp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is one goroutine reading the RTP sockets registered with its
// epoll instance. Conns are closed by it (after Conn.Close hands them
// over), so that a socket is never closed, and its descriptor reused,
// while the poller reads it.
type poller struct {
	e    *Engine
	epfd int
	wake int // eventfd: a close to do, or stop

	mu      sync.Mutex
	conns   map[int32]*Conn
	closing []*Conn
	stopped bool

	// Used by the poller goroutine only.
	buf  [2048]byte
	dbuf [2048]byte
	pkt  Packet
	rsa  unix.RawSockaddrAny
}

func newPoller(e *Engine) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &poller{e: e, epfd: epfd, wake: wake, conns: map[int32]*Conn{}}, nil
}

func (p *poller) add(c *Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return ErrClosed
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
		return err
	}
	c.p = p
	p.conns[int32(c.fd)] = c
	return nil
}

// release hands c's sockets to the poller to close. Once the poller has
// stopped, they are closed at once.
func (p *poller) release(c *Conn) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		c.closeSockets()
		return
	}
	p.closing = append(p.closing, c)
	p.mu.Unlock()
	p.poke()
}

func (p *poller) poke() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.wake, one[:])
}

func (p *poller) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.poke()
}

// run reads until stopped.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.e.log.Error("rtp poller stopped", "err", err)
			return
		}
		for i := range n {
			fd := events[i].Fd
			if fd == int32(p.wake) {
				if p.serviceWake() {
					return
				}
				continue
			}
			p.mu.Lock()
			c := p.conns[fd]
			p.mu.Unlock()
			if c != nil {
				p.read(c)
			}
		}
	}
}

// serviceWake closes the conns handed over and reports whether to stop.
func (p *poller) serviceWake() bool {
	var b [8]byte
	_, _ = unix.Read(p.wake, b[:])
	p.mu.Lock()
	closing := p.closing
	p.closing = nil
	for _, c := range closing {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		delete(p.conns, int32(c.fd))
	}
	stopped := p.stopped
	p.mu.Unlock()
	for _, c := range closing {
		c.closeSockets()
	}
	return stopped
}

// closeAll closes every socket left and the poller's own descriptors.
func (p *poller) closeAll() {
	p.mu.Lock()
	p.stopped = true
	conns := p.conns
	p.conns = map[int32]*Conn{}
	closing := p.closing
	p.closing = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.closed.Store(true)
		c.closeSockets()
	}
	for _, c := range closing {
		c.closeSockets()
	}
	unix.Close(p.epfd)
	unix.Close(p.wake)
}

// maxReadsPerWake bounds what one socket gets read in a row, so that a
// flood on one leg does not starve the others of the same poller.
const maxReadsPerWake = 64

// read takes what is queued on c's socket and hands each RTP packet to its
// receiver.
func (p *poller) read(c *Conn) {
	for range maxReadsPerWake {
		n, err := p.recvfrom(c.fd)
		if err != nil {
			// EAGAIN: nothing left. Anything else (an ICMP error queued on
			// the socket, ECONNREFUSED) is consumed by the read itself.
			if err == unix.EAGAIN || err == unix.EWOULDBLOCK {
				return
			}
			continue
		}
		if c.closed.Load() {
			continue // a spare pair's, or a leg's being closed: dropped
		}
		b := p.buf[:n]
		if in := c.in.Load(); in != nil {
			d, err := in.DecryptRTP(p.dbuf[:0], b, nil)
			if err != nil {
				p.e.stats.Dropped.Add(1)
				continue
			}
			b = d
		}
		if err := p.pkt.parse(b); err != nil {
			p.e.stats.Dropped.Add(1)
			continue
		}
		p.pkt.From = addrPortOf(&p.rsa)
		p.e.stats.Received.Add(1)
		c.recv.ReceiveRTP(c, &p.pkt)
	}
}

// recvfrom reads one datagram into p.buf, its source into p.rsa, without
// allocating.
func (p *poller) recvfrom(fd int) (int, error) {
	l := uint32(unix.SizeofSockaddrAny)
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p.buf[0])), uintptr(len(p.buf)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&p.rsa)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// addrPortOf reads a raw socket address.
func addrPortOf(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), ntohs(a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), ntohs(a.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port stored in network byte order in a uint16 field.
func ntohs(v uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&v))
	return binary.BigEndian.Uint16(b[:])
}

// htons stores a port in network byte order in a uint16 field.
func htons(port uint16) uint16 {
	var v uint16
	b := (*[2]byte)(unsafe.Pointer(&v))
	binary.BigEndian.PutUint16(b[:], port)
	return v
}
