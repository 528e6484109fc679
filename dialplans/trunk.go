package dialplans

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Trunk is a carrier connection of a customer. Inbound INVITEs from the
// trunk's address to one of the customer's DIDs belong to that customer.
type Trunk struct {
	Name    string
	Address string // as written: IP, IP:port or CIDR
	// Outbound calls: where INVITEs go (IP or IP:port; default Address
	// when it names one host), the digest credentials the carrier
	// challenges for, and the number presented as caller ID (default the
	// customer's first DID).
	Outbound string
	Username string
	Password string
	CallerID string
	// Register: the trunk registers to the carrier at its outbound
	// address, as Username, every RegisterExpiry (default 300s).
	Register       bool
	RegisterExpiry time.Duration

	prefix netip.Prefix
	port   uint16 // 0: any source port
	out    netip.AddrPort
}

// parseTrunkAddress accepts an IP address, IP:port ([v6]:port) or a CIDR
// prefix. Host names are refused: resolving DNS while loading a dialplan
// would make a reload slow and its result depend on the resolver.
func parseTrunkAddress(s string) (netip.Prefix, uint16, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, 0, fmt.Errorf("want a CIDR prefix like 203.0.113.0/24")
		}
		return p.Masked(), 0, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.Prefix{}, 0, fmt.Errorf("port must not be 0")
		}
		a := ap.Addr().Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), ap.Port(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), 0, nil
	}
	return netip.Prefix{}, 0, fmt.Errorf("want an IP address, IP:port or CIDR (host names are not resolved)")
}

// Matches reports whether src, the source of a SIP request, is this trunk.
func (t *Trunk) Matches(src netip.AddrPort) bool {
	if t == nil || !t.prefix.IsValid() {
		return false
	}
	if t.port != 0 && src.Port() != t.port {
		return false
	}
	return t.prefix.Contains(src.Addr().Unmap().WithZone(""))
}

// Target is where calls out through this trunk go: its address when it
// names one host (IP or IP:port, port 5060 when none is given); false for
// a CIDR prefix, which is a range of sources, not a destination.
func (t *Trunk) Target() (netip.AddrPort, bool) {
	if t != nil && t.out.IsValid() {
		return t.out, true
	}
	if t == nil || !t.prefix.IsValid() || t.prefix.Bits() != t.prefix.Addr().BitLen() {
		return netip.AddrPort{}, false
	}
	port := t.port
	if port == 0 {
		port = 5060
	}
	return netip.AddrPortFrom(t.prefix.Addr(), port), true
}

// OutboundURI returns the SIP URI that reaches number, a number outside the
// customer (not one of its extensions), through the customer's first trunk
// that names a single host.
func (c *Customer) OutboundURI(number string) (string, bool) {
	if c == nil || number == "" || strings.ContainsAny(number, "@:;<> ") {
		return "", false
	}
	for _, t := range c.Trunks {
		if ap, ok := t.Target(); ok {
			return "sip:" + number + "@" + ap.String(), true
		}
	}
	return "", false
}

// OutsideTrunks returns the customer's trunks that take outbound calls, in
// the order they are tried (the first, then the next on 5xx or timeout).
func (c *Customer) OutsideTrunks() []*Trunk {
	if c == nil {
		return nil
	}
	var out []*Trunk
	for _, t := range c.Trunks {
		if _, ok := t.Target(); ok {
			out = append(out, t)
		}
	}
	return out
}

// OutsideURI is the Request-URI of a call to number through trunk t.
func (t *Trunk) OutsideURI(number string) (string, bool) {
	ap, ok := t.Target()
	if !ok || number == "" || strings.ContainsAny(number, "@:;<> ") {
		return "", false
	}
	return "sip:" + number + "@" + ap.String(), true
}

// CallerIDOf is the number presented on an outside call through t.
func (c *Customer) CallerIDOf(t *Trunk) string {
	if t != nil && t.CallerID != "" {
		return t.CallerID
	}
	return c.FirstDID()
}

// parseOutbound accepts an IP address or IP:port ([v6]:port), port 5060
// when none is given; host names are refused as for trunk addresses.
func parseOutbound(s string) (netip.AddrPort, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("port must not be 0")
		}
		return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap().WithZone(""), 5060), nil
	}
	return netip.AddrPort{}, fmt.Errorf("want an IP address or IP:port (host names are not resolved)")
}

// FirstDID is the customer's first DID in its file ("" when none).
func (c *Customer) FirstDID() string {
	best, line := "", 0
	for n, l := range c.didLines {
		if best == "" || l < line {
			best, line = n, l
		}
	}
	return best
}
