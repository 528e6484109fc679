package core

// The SIP listeners: UDP (with its receive queue, sipqueue.go, and its
// writes, sipwrite.go), TCP and TLS.

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// listener is one bound SIP listener.
type listener struct {
	name  string
	serve func() error
	close func() error
}

// listen binds the SIP listeners (UDP, and TCP and TLS when configured): a
// port that cannot be bound fails here, before anything runs.
func (c *Core) listen() ([]listener, error) {
	var ls []listener
	fail := func(addr string, err error) ([]listener, error) {
		for _, l := range ls {
			_ = l.close()
		}
		return nil, fmt.Errorf("sip listen %s: %w", addr, err)
	}
	udp, err := net.ListenPacket("udp", c.Addr())
	if err != nil {
		return fail(c.Addr(), err)
	}
	if uc, ok := udp.(*net.UDPConn); ok {
		c.log.Debug("SIP UDP receive queue", "bytes", growReceiveBuffer(uc, udpReceiveBuffer))
		tc := newTimedConn(uc, func(d time.Duration) { c.metrics.queueWait.Observe(d.Seconds()) })
		c.sipUDP.Store(tc)
		udp = tc
	}
	ls = append(ls, listener{"udp", func() error { return c.srv.ServeUDP(udp) }, udp.Close})
	if c.cfg.TCP {
		l, err := net.Listen("tcp", c.Addr())
		if err != nil {
			return fail(c.Addr(), err)
		}
		l = c.strangers.listener(l)
		ls = append(ls, listener{"tcp", func() error { return c.srv.ServeTCP(l) }, l.Close})
	}
	if c.cfg.TLS != nil {
		addr := net.JoinHostPort(c.cfg.Host, strconv.Itoa(c.cfg.TLSPort))
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(addr, err)
		}
		l := tls.NewListener(c.strangers.listener(tl), tlsConfig(c.cfg.TLS))
		ls = append(ls, listener{"tls", func() error { return c.srv.ServeTLS(l) }, l.Close})
	}
	return ls, nil
}

// udpReceiveBuffer is the receive queue asked for the SIP UDP socket. One
// goroutine reads and parses every datagram; the kernel's default queue
// (208 KB) overflowed in bursts at a few hundred calls a second (thousands
// of datagrams dropped in a minute, each a retransmission and often a
// failed call).
const udpReceiveBuffer = 8 << 20

// growReceiveBuffer sets a UDP socket's receive queue to size, past the
// system's limit when the process may (SO_RCVBUFFORCE), and returns the
// size the kernel reports.
func growReceiveBuffer(uc *net.UDPConn, size int) int {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size) // capped by net.core.rmem_max
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return got
}

// streamWriteTimeout bounds a SIP write over TCP or TLS. A write only waits
// when the peer has stopped reading (its window and our send buffer full);
// one that times out closes the connection (third_party/sipgo, patch 5), as
// does a message that finds 64 waiting behind such a write for 250 ms, so a
// peer that floods requests and reads no answer holds neither goroutines
// nor whatever their callers hold (a leg's steps) for longer than this.
const streamWriteTimeout = 5 * time.Second
