// Package rawudp sends UDP datagrams from any local port through raw IPv4
// sockets, many per system call.
//
// Music on hold is the same 20 ms frame sent to thousands of parked calls,
// each from its own RTP port. Written through each leg's own socket, that
// is one sendto per packet plus, in Go, a netpoll wake-up per packet; on a
// 2-core machine the system calls alone top out near 200,000 packets/s.
// Through an IPPROTO_RAW socket the core builds the IP and UDP headers
// itself (source = the leg's own address and port, so the far end sees
// exactly what the leg's socket would have sent) and hands a whole tick's
// packets to the kernel with one sendmmsg per few hundred.
//
// The sockets are blocking descriptors outside Go's netpoller, written with
// sendmmsg directly. Registered with epoll, as a net.PacketConn is, every
// datagram the kernel finished with woke the socket's waiters (sock_wfree:
// the epoll callback, its lock, and a netpoll wake-up in the runtime): per
// packet, for a socket nobody ever waits to write on. A full send buffer
// now blocks the sending thread in the kernel until there is room, which
// is what the netpoller's wait amounted to.
//
// Opening the sockets needs CAP_NET_RAW; without it Open fails and callers
// keep writing through the legs' sockets. Only IPv4 is batched.
package rawudp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ipHeaderLen  = 20
	udpHeaderLen = 8
	// SlotSize bounds one datagram (headers included) in a Batch.
	SlotSize = 512
	// chunk is how many slots are allocated at once.
	chunk = 64
	// MaxPerCall bounds the messages of one sendmmsg; a caller may flush
	// a batch that reached it rather than let it grow.
	MaxPerCall = 256
)

// Conn is a few raw sockets, one per goroutine that may flush at once. Go
// serialises the writes on one socket (its descriptor's write lock), so
// batches flushed together from the music hub's shards, one per core,
// would take turns in sendmmsg on a single socket: measured at 5,000
// parked calls on 2 cores, one socket carried 148,000 packets/s with a
// third of the machine idle, two carried 243,000. It is safe for
// concurrent use by several Batches.
type Conn struct {
	socks []*socket
	mu    sync.Mutex
	next  int // the socket of the next Batch
}

// socket is one IPPROTO_RAW socket: a blocking descriptor. mu keeps Close
// from releasing the descriptor (whose number the kernel may hand out
// again) while a sendmmsg is using it.
type socket struct {
	mu sync.RWMutex
	fd int // -1 once closed
}

// Open opens n raw sockets (at least one; CAP_NET_RAW). Batches are spread
// over them in turn: n is the number of batches meant to flush at once.
func Open(n int) (*Conn, error) {
	c := &Conn{}
	for range max(n, 1) {
		s, err := openSocket()
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		c.socks = append(c.socks, s)
	}
	return c, nil
}

func openSocket() (*socket, error) {
	// IPPROTO_RAW: send only (no copy of received packets is queued to it),
	// header included.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("rawudp: socket: %w", err)
	}
	// A tick's batch must fit the send buffer: with a full buffer
	// sendmmsg waits (on loopback, until softirq delivery frees it) and
	// the whole tick is late. SO_SNDBUFFORCE passes net.core.wmem_max
	// where allowed (CAP_NET_ADMIN); otherwise take what the limit gives.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
	}
	return &socket{fd: fd}, nil
}

// sendmmsg hands msgs to the kernel and returns how many it took.
func (s *socket) sendmmsg(msgs []unix.Mmsghdr) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return 0, net.ErrClosed
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return 0, errno
		}
		return int(n), nil
	}
}

func (s *socket) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// sendBuffer is the raw socket's send buffer: several ticks of 5,000
// packets (about 1 KiB of kernel memory each).
const sendBuffer = 16 << 20

// Close closes the sockets.
func (c *Conn) Close() error {
	var errs []error
	for _, s := range c.socks {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// Batch collects datagrams until Flush. A Batch is used by one goroutine at
// a time; its memory is kept from one flush to the next, so a steady load
// allocates nothing.
type Batch struct {
	sock  *socket
	msgs  []unix.Mmsghdr // msgs[i] points at iovs[i] and addrs[i]
	iovs  []unix.Iovec   // iovs[i] is the datagram in slots[i]
	addrs []unix.RawSockaddrInet4
	slots [][]byte // SlotSize each, reused
	n     int
	// Sent and Failed count datagrams since the Batch was made.
	Sent, Failed uint64
}

// NewBatch returns an empty batch sending through the next of c's sockets.
func (c *Conn) NewBatch() *Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.socks[c.next%len(c.socks)]
	c.next++
	return &Batch{sock: s}
}

// Len is the number of datagrams waiting.
func (b *Batch) Len() int { return b.n }

// Add queues one datagram from src to dst whose payload is the
// concatenation of parts. It reports false (nothing queued) when either
// address is not IPv4 or the datagram does not fit a slot; the caller then
// sends it some other way.
func (b *Batch) Add(src, dst netip.AddrPort, parts ...[]byte) bool {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return false
	}
	size := ipHeaderLen + udpHeaderLen
	for _, p := range parts {
		size += len(p)
	}
	if size > SlotSize {
		return false
	}
	if b.n == len(b.slots) {
		block := make([]byte, chunk*SlotSize)
		for i := range chunk {
			b.slots = append(b.slots, block[i*SlotSize:(i+1)*SlotSize:(i+1)*SlotSize])
		}
		// Growing moves the arrays: the messages queued so far keep
		// pointing into the old ones, which they keep alive.
		b.msgs = append(b.msgs, make([]unix.Mmsghdr, chunk)...)
		b.iovs = append(b.iovs, make([]unix.Iovec, chunk)...)
		b.addrs = append(b.addrs, make([]unix.RawSockaddrInet4, chunk)...)
	}
	pkt := b.slots[b.n][:size]
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	// IPv4 header: the kernel fills in the checksum, total length and ID.
	pkt[0] = 0x45
	pkt[1] = 0
	binary.BigEndian.PutUint16(pkt[2:], uint16(size))
	binary.BigEndian.PutUint16(pkt[4:], 0)
	binary.BigEndian.PutUint16(pkt[6:], 0x4000) // don't fragment
	pkt[8] = 64
	pkt[9] = 17 // UDP
	binary.BigEndian.PutUint16(pkt[10:], 0)
	copy(pkt[12:16], s4[:])
	copy(pkt[16:20], d4[:])
	udp := pkt[ipHeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(size-ipHeaderLen))
	binary.BigEndian.PutUint16(udp[6:], 0)
	off := udpHeaderLen
	for _, p := range parts {
		off += copy(udp[off:], p)
	}
	binary.BigEndian.PutUint16(udp[6:], Checksum(s4, d4, udp))
	b.addrs[b.n] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: d4}
	b.iovs[b.n] = unix.Iovec{Base: &pkt[0]}
	b.iovs[b.n].SetLen(size)
	m := &b.msgs[b.n]
	*m = unix.Mmsghdr{Hdr: unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&b.addrs[b.n])),
		Namelen: unix.SizeofSockaddrInet4,
		Iov:     &b.iovs[b.n],
	}}
	m.Hdr.SetIovlen(1)
	b.n++
	return true
}

// Flush sends what is queued, a few hundred datagrams per system call, and
// empties the batch. It returns the first error; datagrams the kernel
// refused are counted in Failed and dropped (UDP, like a full socket
// buffer would).
func (b *Batch) Flush() error {
	var first error
	for i := 0; i < b.n; {
		end := min(b.n, i+MaxPerCall)
		sent, err := b.sock.sendmmsg(b.msgs[i:end])
		if sent > 0 {
			b.Sent += uint64(sent)
			i += sent
			continue
		}
		if first == nil {
			first = err
		}
		// Skip the datagram the kernel refused and go on with the rest.
		b.Failed++
		i++
	}
	b.n = 0
	return first
}

// Checksum is the UDP checksum of udp (header with a zero checksum field,
// then data) between src and dst, with 0 sent as 0xffff (RFC 768).
func Checksum(src, dst [4]byte, udp []byte) uint16 {
	var sum uint32
	sum += uint32(src[0])<<8 | uint32(src[1])
	sum += uint32(src[2])<<8 | uint32(src[3])
	sum += uint32(dst[0])<<8 | uint32(dst[1])
	sum += uint32(dst[2])<<8 | uint32(dst[3])
	sum += 17
	sum += uint32(len(udp))
	n := len(udp)
	for i := 0; i+1 < n; i += 2 {
		sum += uint32(udp[i])<<8 | uint32(udp[i+1])
	}
	if n%2 == 1 {
		sum += uint32(udp[n-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	cs := ^uint16(sum)
	if cs == 0 {
		cs = 0xffff
	}
	return cs
}
