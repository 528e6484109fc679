// Package rawudp sends UDP datagrams from any local port through one raw
// IPv4 socket, many per system call.
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
// Opening the socket needs CAP_NET_RAW; without it Open fails and callers
// keep writing through the legs' sockets. Only IPv4 is batched.
package rawudp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
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

// Conn is one raw socket. It is safe for concurrent use by several Batches.
type Conn struct {
	c  net.PacketConn
	pc *ipv4.PacketConn
}

// Open opens the raw socket (CAP_NET_RAW).
func Open() (*Conn, error) {
	c, err := net.ListenPacket("ip4:255", "0.0.0.0") // IPPROTO_RAW: send only, header included
	if err != nil {
		return nil, fmt.Errorf("rawudp: %w", err)
	}
	// A tick's batch must fit the send buffer: with a full buffer
	// sendmmsg waits (on loopback, until softirq delivery frees it) and
	// the whole tick is late. SO_SNDBUFFORCE passes net.core.wmem_max
	// where allowed (CAP_NET_ADMIN); otherwise take what the limit gives.
	if sc, err := c.(*net.IPConn).SyscallConn(); err == nil {
		var serr error
		_ = sc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, sendBuffer)
		})
		if serr != nil {
			_ = c.(*net.IPConn).SetWriteBuffer(sendBuffer)
		}
	}
	return &Conn{c: c, pc: ipv4.NewPacketConn(c)}, nil
}

// sendBuffer is the raw socket's send buffer: several ticks of 5,000
// packets (about 1 KiB of kernel memory each).
const sendBuffer = 16 << 20

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

// Batch collects datagrams until Flush. A Batch is used by one goroutine at
// a time; its memory is kept from one flush to the next, so a steady load
// allocates nothing.
type Batch struct {
	conn  *Conn
	msgs  []ipv4.Message
	addrs []net.IPAddr
	slots [][]byte // SlotSize each, reused
	views [][]byte // views[i] is the datagram in slots[i]
	n     int
	// Sent and Failed count datagrams since the Batch was made.
	Sent, Failed uint64
}

// NewBatch returns an empty batch sending through c.
func (c *Conn) NewBatch() *Batch { return &Batch{conn: c} }

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
		b.views = append(b.views, make([][]byte, chunk)...)
		b.msgs = append(b.msgs, make([]ipv4.Message, chunk)...)
		b.addrs = append(b.addrs, make([]net.IPAddr, chunk)...)
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
	b.addrs[b.n] = net.IPAddr{IP: net.IP(pkt[16:20:20])}
	b.views[b.n] = pkt
	b.msgs[b.n] = ipv4.Message{Buffers: b.views[b.n : b.n+1 : b.n+1], Addr: &b.addrs[b.n]}
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
		sent, err := b.conn.pc.WriteBatch(b.msgs[i:end], 0)
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
