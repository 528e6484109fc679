package core

import (
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// In-dialog requests (BYE, re-INVITE, REFER, INFO, NOTIFY, UPDATE, ACK)
// reach a leg only when they match its dialog exactly: the Call-ID and both
// tags, and over UDP the address of the far end (the address its INVITE or
// answer came from, its Contact, or for a trunk leg any address of the
// trunk). Anything else is answered 481 before a single event is published
// or a packet of media changes: knowing a Call-ID (it travels in the clear)
// is not enough to touch a call.

// owns reports whether req belongs to the leg's dialog.
func (ch *channel) owns(req *sip.Request) bool {
	var id, want string
	var err error
	switch {
	case ch.srv != nil:
		want = ch.srv.ID
		id, err = sip.DialogIDFromRequestUAS(req)
	case ch.cli != nil:
		want = ch.cli.ID
		id, err = sip.DialogIDFromRequestUAC(req)
	default:
		return false
	}
	if err != nil || want == "" || id != want {
		return false
	}
	if !strings.EqualFold(req.Transport(), "udp") {
		// A stream transport's connection already ties the request to the
		// peer that set it up (and TLS authenticates it).
		return true
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return false
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	ch.mu.Lock()
	remotes := ch.remotes
	ch.mu.Unlock()
	for _, r := range remotes {
		if r == src {
			return true
		}
	}
	return ch.trunk != "" && ch.core.cfg.Directory.TrunkMatches(ch.customer, ch.trunk, src)
}

// addRemote records an address the far end of the leg may send from.
func (ch *channel) addRemote(hostport string) {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, r := range ch.remotes {
		if r == ap {
			return
		}
	}
	ch.remotes = append(ch.remotes, ap)
}

// addRemoteURI records the address of a Contact URI when it names an IP.
func (ch *channel) addRemoteURI(u sip.Uri) {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err == nil {
		ch.addRemote(netip.AddrPortFrom(a, uint16(port)).String())
	}
}

// inDialog guards a request that can only be in a dialog: when its Call-ID
// names a leg of ours it must match that leg (else 481, or nothing for an
// ACK). It returns false when it has answered.
func (c *Core) inDialog(req *sip.Request, tx sip.ServerTransaction) bool {
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil || ch.owns(req) {
		return true
	}
	if req.Method == sip.ACK {
		// A late ACK of a leg's earlier answer, or a forgery: nothing to
		// answer and nothing it may change. (The ACKs of stateless
		// refusals, one per challenged call, never get here.)
		return false
	}
	c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
	return false
}
