package core

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// dialog is a leg's SIP dialog (RFC 3261 12): what requests inside it need
// and what requests from the far end must match, kept small. The INVITE
// and its answer are not kept once the dialog is set up: a parked call
// holds this, not a few kilobytes of parsed messages.
//
// Both sides look the same from here: local is callpark's end (the To of
// an INVITE it answered, the From of one it sent), remote the phone's.
type dialog struct {
	callID    string
	localTag  string
	remoteTag string
	local     sip.Uri
	localName string
	remote    sip.Uri
	// remoteName is the far end's display name.
	remoteName string
	// target is the far end's Contact: the Request-URI of requests to it.
	target sip.Uri
	// routes is the route set, in the order of the Route headers sent.
	routes []sip.Uri
	// transport is the SIP transport (UDP, TCP, TLS) and dest where
	// requests to the far end go: the address it sends from (NAT, and the
	// connection of a TCP or TLS phone, RFC 5923).
	transport string
	dest      string
	// allow is the far end's Allow header ("" when it sent none).
	allow    string
	localSeq atomic.Uint32
	// inviteSeq is the CSeq of the INVITE that made the dialog.
	inviteSeq uint32
	// ackVia is the Via of the ACK sent for the 2xx that made the dialog
	// (ours only; nil until sent): each copy of that 2xx gets the same ACK.
	// ackMu makes a copy that comes while the first ACK is being sent wait
	// for it, and then send the same.
	ackMu  sync.Mutex
	ackVia *sip.ViaHeader
}

// owns reports whether req belongs to the dialog: the Call-ID and both
// tags, and over UDP an address the far end may send from (see
// channel.owns).
func (d *dialog) matches(req *sip.Request) bool {
	if d == nil || req.CallID() == nil || req.CallID().Value() != d.callID {
		return false
	}
	from, to := req.From(), req.To()
	if from == nil || to == nil {
		return false
	}
	ft, _ := from.Params.Get("tag")
	tt, _ := to.Params.Get("tag")
	return ft != "" && ft == d.remoteTag && tt == d.localTag
}

// request builds a request inside the dialog (RFC 3261 12.2.1.1): the
// Request-URI is the far end's Contact, From and To carry the tags, the
// CSeq is the dialog's next. Via and Contact are added when it is sent.
func (d *dialog) request(method sip.RequestMethod) *sip.Request {
	req := sip.NewRequest(method, *d.target.Clone())
	from := &sip.FromHeader{DisplayName: d.localName, Address: *d.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &sip.ToHeader{DisplayName: d.remoteName, Address: *d.remote.Clone(), Params: sip.NewParams()}
	to.Params.Add("tag", d.remoteTag)
	callID := sip.CallIDHeader(d.callID)
	seq := d.localSeq.Add(1)
	if method == sip.ACK {
		seq = d.inviteSeq
	}
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&maxFwd)
	for _, r := range d.routes {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	req.SetTransport(d.transport)
	switch {
	case len(d.routes) > 0:
		req.SetDestination(d.routes[0].HostPort())
	case d.dest != "":
		req.SetDestination(d.dest)
	}
	return req
}

// errNoDialog: the leg has no dialog (not answered yet, or not any more).
var errNoDialog = errors.New("no dialog")

// do sends req inside the dialog and returns its final response.
func (c *Core) do(ctx context.Context, d *dialog, req *sip.Request) (*sip.Response, error) {
	if d == nil {
		return nil, errNoDialog
	}
	if req.Contact() == nil {
		req.AppendHeader(c.contact(d.transport))
	}
	tx, err := c.clientFor(d.transport).TransactionRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			return nil, tx.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// routeSet reads a route set from Record-Route headers; reverse for the
// UAC side (RFC 3261 12.1.2).
func routeSet(m sip.Message, reverse bool) []sip.Uri {
	var out []sip.Uri
	for _, h := range m.GetHeaders("Record-Route") {
		for _, v := range splitAddressList(h.Value()) {
			var u sip.Uri
			params := sip.NewParams()
			if _, err := sip.ParseAddressValue(v, &u, &params); err == nil && u.Host != "" {
				out = append(out, u)
			}
		}
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// splitAddressList splits a header value of comma-separated addresses,
// leaving commas inside <> and quotes alone.
func splitAddressList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// In-dialog requests (BYE, re-INVITE, REFER, INFO, NOTIFY, UPDATE, ACK)
// reach a leg only when they match its dialog exactly: the Call-ID and both
// tags, and over UDP the address of the far end (the address its INVITE or
// answer came from, its Contact, or for a trunk leg any address of the
// trunk). Anything else is answered 481 before a single event is published
// or a packet of media changes: knowing a Call-ID (it travels in the clear)
// is not enough to touch a call.

// owns reports whether req belongs to the leg's dialog.
func (ch *channel) owns(req *sip.Request) bool {
	ch.mu.Lock()
	d := ch.dlg
	remotes := ch.remotes
	ch.mu.Unlock()
	if !d.matches(req) {
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
// ACK). It returns the leg (nil when none) and false when it has answered.
func (c *Core) inDialog(req *sip.Request, tx sip.ServerTransaction) (*channel, bool) {
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil {
		return nil, true
	}
	if ch.owns(req) {
		return ch, true
	}
	if req.Method == sip.ACK {
		// A late ACK of a leg's earlier answer, or a forgery: nothing to
		// answer and nothing it may change. (The ACKs of stateless
		// refusals, one per challenged call, never get here.)
		return nil, false
	}
	c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
	return nil, false
}
