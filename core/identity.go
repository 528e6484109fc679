package core

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/events"
)

// headerSafe keeps a display name or URI taken from a phone's own From
// header to what a header value may hold. (Built once: a Replacer builds its
// tables on first use, 7 KB, which was one per retrieval.)
var headerSafe = strings.NewReplacer(`"`, "", "\\", "", "\r", "", "\n", "", "<", "", ">", "")

// sendIdentity tells the phone on the leg who it talks to now: an in-dialog
// UPDATE without a body carrying P-Asserted-Identity (RFC 3325, which most
// desk phones show) and Remote-Party-ID (the older draft some still read).
// Only to a phone whose Allow lists UPDATE (RFC 3311 5.1); the answer does
// not matter: a phone that refuses keeps its display.
func (ch *channel) sendIdentity(p events.Party) {
	defer ch.core.recoverGoroutine("identity")
	ch.mu.Lock()
	srv, cli := ch.srv, ch.cli
	remotes := ch.remotes
	ch.mu.Unlock()
	domain, _ := ch.core.cfg.Directory.Domain(ch.customer)
	uri := p.URI
	if uri == "" || !strings.HasPrefix(uri, "sip") {
		uri = "sip:" + p.User + "@" + domain
	}
	uri = headerSafe.Replace(uri)
	name := ""
	if d := headerSafe.Replace(p.Display); d != "" {
		name = `"` + d + `" `
	}
	id := name + "<" + uri + ">"

	var target sip.Uri
	var allow sip.Header
	switch {
	case srv != nil && srv.InviteRequest.Contact() != nil:
		target = *srv.InviteRequest.Contact().Address.Clone()
		allow = srv.InviteRequest.GetHeader("Allow")
	case cli != nil && cli.InviteResponse != nil && cli.InviteResponse.Contact() != nil:
		target = *cli.InviteResponse.Contact().Address.Clone()
		allow = cli.InviteResponse.GetHeader("Allow")
	default:
		return
	}
	if !allows(allow, sip.UPDATE) {
		ch.core.log.Debug("identity not sent: the phone does not allow UPDATE", "call", ch.id)
		return
	}
	req := sip.NewRequest(sip.UPDATE, target)
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", id))
	req.AppendHeader(sip.NewHeader("Remote-Party-ID", id+";party=calling;screen=yes;privacy=off"))
	if len(remotes) > 0 {
		// Where the phone sends from (NAT), as for every in-dialog request.
		req.SetDestination(remotes[0].String())
	}
	ctx, cancel := context.WithTimeout(ch.ctx, 5*time.Second)
	defer cancel()
	var res *sip.Response
	var err error
	if srv != nil {
		res, err = srv.Do(ctx, req)
	} else {
		res, err = cli.Do(ctx, req)
	}
	if err != nil {
		ch.core.log.Debug("identity update failed", "call", ch.id, "err", err)
		return
	}
	ch.core.log.Debug("identity update answered", "call", ch.id, "status", res.StatusCode)
}

// allows reports whether an Allow header lists method.
func allows(h sip.Header, method sip.RequestMethod) bool {
	if h == nil {
		return false
	}
	for _, m := range strings.Split(h.Value(), ",") {
		if strings.EqualFold(strings.TrimSpace(m), string(method)) {
			return true
		}
	}
	return false
}
