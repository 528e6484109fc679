package rtp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"
)

// Receiver gets the RTP packets a leg's phone sends, on the poller's
// goroutine: it must not block, and must not keep the packet.
type Receiver interface {
	ReceiveRTP(c *Conn, p *Packet)
}

// Conn is one leg's media: its RTP and RTCP sockets and where its packets
// go. Write and the setters are safe for concurrent use.
type Conn struct {
	e     *Engine
	p     *poller
	fd    int
	rtcp  int
	local netip.AddrPort
	recv  Receiver

	closed atomic.Bool
	// in decrypts what arrives (SRTP); read by the poller only.
	in atomic.Pointer[srtp.Context]

	mu     sync.Mutex
	remote netip.AddrPort
	sa4    unix.RawSockaddrInet4
	sa6    unix.RawSockaddrInet6
	out    *srtp.Context // encrypts what we send (SRTP)
	obuf   []byte
	// The deaf filter in place: on, and the payload type it keeps.
	deaf   bool
	deafPT int
}

// Local is the leg's RTP address.
func (c *Conn) Local() netip.AddrPort { return c.local }

// Remote is where the leg's RTP goes (invalid until SetRemote).
func (c *Conn) Remote() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remote
}

// SetRemote sets where the leg's RTP goes, from the far end's SDP.
func (c *Conn) SetRemote(ap netip.AddrPort) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remote = ap
	if ap.Addr().Is4() {
		c.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		c.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(ap.Port()), Addr: ap.Addr().As16()}
	}
}

// Secure makes the leg SRTP: out encrypts what it sends, in decrypts what
// arrives (nil: plain RTP again).
func (c *Conn) Secure(out, in *srtp.Context) {
	c.mu.Lock()
	c.out = out
	c.mu.Unlock()
	c.in.Store(in)
}

// Secured reports whether the leg's RTP is encrypted.
func (c *Conn) Secured() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out != nil
}

// Write sends one marshalled RTP packet to the remote address, encrypted
// when the leg is secure. Without a usable remote address (none yet, 0.0.0.0,
// port 0, another address family) the packet is dropped silently: a phone
// on hold that way asked for nothing.
func (c *Conn) Write(pkt []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	sa, salen := c.sockaddrLocked()
	if sa == nil {
		return nil
	}
	if c.out != nil {
		enc, err := c.out.EncryptRTP(c.obuf[:0], pkt, nil)
		if err != nil {
			c.e.stats.Failed.Add(1)
			return err
		}
		c.obuf = enc[:0]
		pkt = enc
	}
	if err := sendto(c.fd, pkt, sa, salen); err != nil {
		c.e.stats.Failed.Add(1)
		return err
	}
	c.e.stats.Sent.Add(1)
	return nil
}

// sockaddrLocked is the remote address for sendto, or nil.
func (c *Conn) sockaddrLocked() (unsafe.Pointer, uintptr) {
	r := c.remote
	if !r.IsValid() || r.Port() == 0 || r.Addr().IsUnspecified() || r.Addr().Is4() != c.local.Addr().Is4() {
		return nil, 0
	}
	if r.Addr().Is4() {
		return unsafe.Pointer(&c.sa4), unix.SizeofSockaddrInet4
	}
	return unsafe.Pointer(&c.sa6), unix.SizeofSockaddrInet6
}

func sendto(fd int, b []byte, sa unsafe.Pointer, salen uintptr) error {
	if len(b) == 0 {
		return nil
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, uintptr(sa), salen)
	if e != 0 {
		return e
	}
	return nil
}

// Close ends the leg's media: nothing is sent or received from now on. Its
// sockets become a spare pair (spares.go) or, when no more are kept, are
// closed by the poller. Idempotent.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed.Swap(true) {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.e.legs.Add(-1)
	if c.p == nil {
		c.closeSockets()
		return nil
	}
	if !c.e.stopped.Load() && c.e.spares.keep(c) {
		return nil
	}
	c.p.release(c)
	return nil
}

// Closed reports whether Close was called.
func (c *Conn) Closed() bool { return c.closed.Load() }

func (c *Conn) closeSockets() {
	unix.Close(c.fd)
	unix.Close(c.rtcp)
}
