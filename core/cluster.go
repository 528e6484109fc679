package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/tick"
)

// A leg on one node meets a leg on another through an internal leg: a SIP
// dialog between the two cores, its RTP between their media, so the parked
// caller's own dialog never moves (no re-INVITE towards a carrier that may
// refuse one). INVITE sip:<leg id>@<owner node> asks the owner to answer
// the internal leg and bridge it with its leg ("join"). A core joins
//
//   - on a bridge command whose Peer is on another node (a call parked on
//     node A retrieved by a phone on node B: B joins A's parked leg);
//   - when a leg it dialed for a leg of another node answers (a dial is
//     sent to the node the account registered through, with Call on the
//     caller's node: the phone's leg stays with the node its phone uses).
//
// Internal INVITEs carry X-Callpark-Internal: <kind>;customer=<c>;sig=<hmac>,
// signed with the cluster secret over kind, customer, Call-ID and the
// Request-URI user: without the secret nobody can make one, and one cannot
// be replayed for another leg. Internal legs publish no events; each ends
// when its local partner does.

const hdrInternal = "X-Callpark-Internal"

const internalJoin = "join"

// sign returns the signature of an internal INVITE.
func (c *Core) sign(kind, customer, callID, user string) string {
	m := hmac.New(sha256.New, c.cfg.ClusterSecret)
	fmt.Fprintf(m, "%s\n%s\n%s\n%s", kind, customer, callID, user)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// internalIdentity checks the internal header of req; ok is false when it
// is absent, err set when it is there but wrong.
func (c *Core) internalIdentity(req *sip.Request) (id identity, ok bool, err error) {
	h := req.GetHeader(hdrInternal)
	if h == nil {
		return identity{}, false, nil
	}
	parts := strings.Split(h.Value(), ";")
	kind := strings.TrimSpace(parts[0])
	var customer, sig string
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "customer":
			customer = v
		case "sig":
			sig = v
		}
	}
	if kind != internalJoin || customer == "" {
		return identity{}, true, errors.New("malformed internal header")
	}
	want := c.sign(kind, customer, req.CallID().Value(), req.Recipient.User)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return identity{}, true, errors.New("bad internal signature")
	}
	return identity{customer: customer, internal: kind}, true, nil
}

// internalTarget is where an internal INVITE of kind for user goes on node.
func (c *Core) internalTarget(node, kind, customer, user string) (target, error) {
	addr, ok := c.cfg.Peers(node)
	if !ok {
		return target{}, fmt.Errorf("node %q is not known", node)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return target{}, fmt.Errorf("node %q: bad address %q", node, addr)
	}
	p, _ := strconv.Atoi(port)
	t := target{uri: sip.Uri{Scheme: "sip", User: user, Host: host, Port: p}, dest: addr, internal: kind}
	return t, nil
}

// internalHeader is the signed header of an internal INVITE.
func (c *Core) internalHeader(kind, customer, callID, user string) sip.Header {
	return sip.NewHeader(hdrInternal, kind+";customer="+customer+";sig="+c.sign(kind, customer, callID, user))
}

// join bridges local leg ch with leg peer of another node: an internal leg
// to that node, answered there and bridged with peer, is bridged with ch.
func (c *Core) join(ch *channel, peer string) error {
	t, err := c.internalTarget(events.NodeOf(peer), internalJoin, ch.customer, peer)
	if err != nil {
		return err
	}
	_, err = c.startDial(&events.Command{Op: events.OpDial, Customer: ch.customer, Call: ch.id, Bridge: true,
		TimeoutMs: 10000}, []target{t}, events.Party{User: peer}, true)
	return err
}

// joinHere answers internal leg ch and bridges it with local leg id.
func (c *Core) joinHere(ch *channel, id string) {
	target := c.channel(id)
	if target == nil || target.customer != ch.customer || target.internal {
		ch.hangup(sip.StatusNotFound, "Not Found")
		return
	}
	defer lockSteps(ch, target)() // answers and bridge: one step (steps.go)
	if target.inbound && !target.isAnswered() {
		target.decided()
		if err := target.answer(); err != nil {
			ch.hangup(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
			return
		}
	}
	if !target.upOrAnswering() {
		ch.hangup(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
		return
	}
	if err := ch.answer(); err != nil {
		return
	}
	c.bridge(ch, target)
}

// announce tells the cluster this core is alive until ctx ends, then that
// it leaves.
func (c *Core) announce(ctx context.Context) {
	if c.cfg.Announce == nil {
		return
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		return
	}
	a := func(leaving bool) *events.Announcement {
		return &events.Announcement{Node: c.cfg.Node, Epoch: c.epoch, SIP: c.Addr(), Started: c.started,
			Time: time.Now().UTC(), Leaving: leaving}
	}
	c.cfg.Announce(a(false))
	tick.Every(ctx, events.AnnounceInterval, func() { c.cfg.Announce(a(false)) })
	if !c.crashed.Load() {
		c.cfg.Announce(a(true))
	}
}
