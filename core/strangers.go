package core

// Strangers on TCP and TLS: a connection accepted from an address is a
// stranger until a request over it authenticates (or comes from a trunk or
// another node). Strangers are few per address and in all, and each has
// Strangers.Timeout to prove itself; a phone does within a round trip or
// two of connecting (its REGISTER, challenged, then with credentials).
// Without this a scanner could hold a goroutine, a read buffer and a
// descriptor per connection for as long as it liked, up to the open-file
// limit the calls' media ports come out of. Asterisk bounds the same with
// tcpauthtimeout and tcpauthlimit.

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/internal/deadline"
)

// StrangerLimits bounds the TCP and TLS connections not yet proven by an
// authenticated request. Zero values take the defaults.
type StrangerLimits struct {
	// Timeout is how long a stranger may stay one (default 30 s) before
	// it is disconnected.
	Timeout time.Duration
	// PerAddress is the most strangers from one IP address at once
	// (default 32: a whole office's phones behind one NAT connecting
	// together prove themselves far faster than they connect). Addresses
	// the ban list trusts are never strangers.
	PerAddress int
	// Total is the most strangers at once (default 1,024).
	Total int
	// PerSecond is the most connections one address may open in a second
	// (default 20). Each costs a goroutine and a read buffer, over TLS a
	// handshake (a signature: a few thousand a second fill a core), and a
	// stranger that hangs up at once never counts for long against
	// PerAddress.
	PerSecond int
}

func (l StrangerLimits) withDefaults() StrangerLimits {
	if l.Timeout <= 0 {
		l.Timeout = 30 * time.Second
	}
	if l.PerAddress <= 0 {
		l.PerAddress = 32
	}
	if l.Total <= 0 {
		l.Total = 1024
	}
	if l.PerSecond <= 0 {
		l.PerSecond = 20
	}
	return l
}

// strangers tracks the accepted connections not yet proven, by remote
// address ("ip:port", what sipgo gives as a request's Source).
type strangers struct {
	limits StrangerLimits
	// banned addresses are refused; trusted ones (an office NAT, a
	// carrier) are never strangers. Either may be nil.
	banned, trusted func(netip.Addr) bool
	refused         *prometheus.CounterVec
	expiry          *deadline.Scheduler

	mu    sync.Mutex
	conns map[string]*guardedConn
	perIP map[netip.Addr]int
	// opened counts the connections each address opened since second
	// (the map starts anew each second, so it holds one second's
	// addresses at most).
	second time.Time
	opened map[netip.Addr]int
}

func newStrangers(limits StrangerLimits, banned, trusted func(netip.Addr) bool, refused *prometheus.CounterVec) *strangers {
	return &strangers{
		limits:  limits.withDefaults(),
		banned:  banned,
		trusted: trusted,
		refused: refused,
		expiry:  deadline.NewScheduler(),
		conns:   map[string]*guardedConn{},
		perIP:   map[netip.Addr]int{},
		opened:  map[netip.Addr]int{},
	}
}

// run disconnects each stranger whose time is up, until ctx ends.
func (s *strangers) run(ctx context.Context) {
	s.expiry.Run(ctx, func(key string) {
		s.mu.Lock()
		gc := s.conns[key]
		if gc != nil {
			s.forgetLocked(gc)
		}
		s.mu.Unlock()
		if gc != nil {
			s.refused.WithLabelValues("unproven").Inc()
			_ = gc.Conn.Close()
		}
	})
}

// listener guards l: connections over the limits, or from a banned
// address, are closed the moment they are accepted.
func (s *strangers) listener(l net.Listener) net.Listener { return &guardedListener{l, s} }

type guardedListener struct {
	net.Listener
	s *strangers
}

// Accept returns the next connection within the limits. It never returns
// an error for a refused one: sipgo stops serving on any.
func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, why := l.s.admit(conn)
		if why == "" {
			return c, nil
		}
		l.s.refused.WithLabelValues(why).Inc()
		_ = conn.Close()
	}
}

// admit takes conn on as a stranger, or says why not; conn itself, with
// no reason, when its address is trusted (never a stranger).
func (s *strangers) admit(conn net.Conn) (net.Conn, string) {
	ap, ok := addrOf(conn.RemoteAddr())
	if !ok {
		return nil, "address"
	}
	ip := ap.Addr().Unmap()
	if s.banned != nil && s.banned(ip) {
		return nil, "banned"
	}
	if s.trusted != nil && s.trusted(ip) {
		return conn, ""
	}
	gc := &guardedConn{Conn: conn, s: s, key: conn.RemoteAddr().String(), ip: ip}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.second) >= time.Second {
		s.second, s.opened = now, map[netip.Addr]int{}
	}
	s.opened[ip]++
	switch {
	case s.opened[ip] > s.limits.PerSecond:
		return nil, "rate"
	case s.perIP[ip] >= s.limits.PerAddress:
		return nil, "per_address"
	case len(s.conns) >= s.limits.Total:
		return nil, "total"
	}
	s.conns[gc.key] = gc
	s.perIP[ip]++
	s.expiry.Schedule(gc.key, time.Now().Add(s.limits.Timeout))
	return gc, ""
}

// trust proves the connection a request came over, if a stranger's.
func (s *strangers) trust(req *sip.Request) {
	if s == nil || strings.EqualFold(req.Transport(), "udp") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gc := s.conns[req.Source()]; gc != nil {
		s.forgetLocked(gc)
	}
}

// forgetLocked stops tracking gc (proven, expired or closed).
func (s *strangers) forgetLocked(gc *guardedConn) {
	if s.conns[gc.key] != gc {
		return
	}
	delete(s.conns, gc.key)
	if s.perIP[gc.ip]--; s.perIP[gc.ip] <= 0 {
		delete(s.perIP, gc.ip)
	}
	s.expiry.Cancel(gc.key)
}

// guardedConn is an accepted connection; closing it forgets it.
type guardedConn struct {
	net.Conn
	s   *strangers
	key string
	ip  netip.Addr
}

func (gc *guardedConn) Close() error {
	gc.s.mu.Lock()
	gc.s.forgetLocked(gc)
	gc.s.mu.Unlock()
	return gc.Conn.Close()
}
