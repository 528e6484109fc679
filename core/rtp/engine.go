package rtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config is what an Engine needs.
type Config struct {
	// Host is the address every leg's sockets bind (and SDP announces).
	Host netip.Addr
	// Pollers is the number of poller goroutines; 0: one per core.
	Pollers int
	// Spares bounds the socket pairs of ended legs kept for new legs
	// (spares.go); 0: DefaultSpares, negative: none.
	Spares int
	// SpareIdle is how long a spare pair waits for a leg before it is
	// closed; 0: DefaultSpareIdle.
	SpareIdle time.Duration
	// Descriptors is the room for legs' and spares' sockets (spares.go);
	// 0: the open-file limit less 512.
	Descriptors int
	// Quiet is how long a spare pair rests before a new leg takes it;
	// 0: DefaultQuiet.
	Quiet time.Duration
	Log   *slog.Logger
}

// Engine opens legs' sockets and runs the pollers that read them.
type Engine struct {
	host    netip.Addr
	log     *slog.Logger
	pollers []*poller
	next    atomic.Uint32
	// stopped is set once Run has returned: a Conn closed later closes its
	// sockets itself.
	stopped atomic.Bool
	running atomic.Bool
	stats   Stats
	progs   programs // deaf filters (bpf.go)
	spares  spares
	legs    atomic.Int64 // open legs (not closed)
}

// Stats are an Engine's counters.
type Stats struct {
	Received atomic.Uint64 // RTP packets handed to receivers
	Dropped  atomic.Uint64 // datagrams that were not RTP, or failed SRTP
	Sent     atomic.Uint64 // packets written
	Failed   atomic.Uint64 // packets that could not be written
	Reused   atomic.Uint64 // legs opened on a spare socket pair
}

// ErrClosed is returned by a closed Conn.
var ErrClosed = errors.New("rtp: connection closed")

// New makes an engine; Run starts its pollers.
func New(cfg Config) (*Engine, error) {
	if !cfg.Host.IsValid() {
		return nil, errors.New("rtp: no host address")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n := cfg.Pollers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	e := &Engine{host: cfg.Host.Unmap(), log: cfg.Log}
	e.spares.max, e.spares.quiet = cfg.Spares, cfg.Quiet
	if e.spares.max == 0 {
		e.spares.max = DefaultSpares
	}
	if e.spares.room = cfg.Descriptors; e.spares.room <= 0 {
		e.spares.room = descriptorRoom()
	}
	if e.spares.quiet <= 0 {
		e.spares.quiet = DefaultQuiet
	}
	if e.spares.idleAfter = cfg.SpareIdle; e.spares.idleAfter <= 0 {
		e.spares.idleAfter = DefaultSpareIdle
	}
	for range n {
		p, err := newPoller(e)
		if err != nil {
			for _, q := range e.pollers {
				q.closeAll()
			}
			return nil, err
		}
		e.pollers = append(e.pollers, p)
	}
	return e, nil
}

// Host is the address legs bind.
func (e *Engine) Host() netip.Addr { return e.host }

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Legs returns the number of legs opened and not yet closed.
func (e *Engine) Legs() int { return int(e.legs.Load()) }

// Spares returns the number of spare socket pairs kept (spares.go).
func (e *Engine) Spares() int { return e.spares.len() }

// Run reads every leg's RTP until ctx ends, then closes every socket
// still open. It must be called once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("rtp: Run called twice")
	}
	var wg sync.WaitGroup
	for _, p := range e.pollers {
		wg.Go(p.run)
	}
	e.spares.expire(ctx)
	e.stopped.Store(true)
	for _, p := range e.pollers {
		p.stop()
	}
	wg.Wait()
	for _, p := range e.pollers {
		p.closeAll()
	}
	e.progs.close()
	return nil
}

// Open gives a new leg a spare socket pair that has rested (spares.go),
// or binds its RTP socket (an even port when it can) and its RTCP socket
// on the port above, and registers the RTP socket with a poller: what the
// phone sends goes to r.
func (e *Engine) Open(r Receiver) (*Conn, error) {
	if e.stopped.Load() {
		return nil, ErrClosed
	}
	short := !e.spares.fits(e.Legs()+1, e.spares.len())
	if spare := e.spares.take(time.Now(), short); spare != nil {
		if c := e.reuse(spare, r); c != nil {
			e.legs.Add(1)
			return c, nil
		}
	}
	var err error
	for range 16 {
		var fd, rfd, port int
		if fd, rfd, port, err = bindPair(e.host); err != nil {
			continue
		}
		// Nobody reads RTCP: the smallest receive queue the kernel allows
		// (a few kilobytes) holds what a phone sends and drops the rest.
		// (A drop-all socket filter did the same at 50 times the cost: the
		// kernel compiles each filter attached.)
		if err = unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1); err != nil {
			unix.Close(fd)
			unix.Close(rfd)
			return nil, fmt.Errorf("rtp: rtcp socket: %w", err)
		}
		c := &Conn{
			fd:    fd,
			rtcp:  rfd,
			local: netip.AddrPortFrom(e.host, uint16(port)),
			recv:  r,
			e:     e,
		}
		p := e.pollers[int(e.next.Add(1))%len(e.pollers)]
		if err = p.add(c); err != nil {
			unix.Close(fd)
			unix.Close(rfd)
			return nil, err
		}
		e.legs.Add(1)
		return c, nil
	}
	return nil, fmt.Errorf("rtp: no port pair: %w", err)
}

// bindPair binds an RTP socket on an even port and its RTCP socket on the
// odd port above (RFC 3550 11). The first socket takes a port the kernel
// picks; an odd one is kept for RTCP, with RTP on the even port below.
func bindPair(host netip.Addr) (rtpFD, rtcpFD, port int, err error) {
	fd, p, err := bindUDP(host, 0)
	if err != nil {
		return -1, -1, 0, err
	}
	if p%2 == 1 {
		other, _, err := bindUDP(host, p-1)
		if err != nil {
			unix.Close(fd)
			return -1, -1, 0, err
		}
		return other, fd, p - 1, nil
	}
	if p == 65534 {
		unix.Close(fd)
		return -1, -1, 0, fmt.Errorf("rtp: port %d has no RTCP port above", p)
	}
	other, _, err := bindUDP(host, p+1)
	if err != nil {
		unix.Close(fd)
		return -1, -1, 0, err
	}
	return fd, other, p, nil
}

// bindUDP opens a non-blocking UDP socket on host:port (0: any port) and
// returns it with its port.
func bindUDP(host netip.Addr, port int) (int, int, error) {
	domain := unix.AF_INET
	if host.Is6() {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, 0, fmt.Errorf("rtp: socket: %w", err)
	}
	var sa unix.Sockaddr
	if host.Is6() {
		sa = &unix.SockaddrInet6{Port: port, Addr: host.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: port, Addr: host.As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("rtp: bind %s: %w", netip.AddrPortFrom(host, uint16(port)), err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("rtp: getsockname: %w", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	}
	return fd, port, nil
}
