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
	ch.waitAnnounced() // inside a confirmed dialog: after the caller's ACK
	d := ch.dialogOf()
	if d == nil {
		return
	}
	domain, _ := ch.core.cfg.Directory.Domain(ch.customer)
	uri := p.URI
	if uri == "" || !strings.HasPrefix(uri, "sip") {
		uri = "sip:" + p.User + "@" + domain
	}
	uri = headerSafe.Replace(uri)
	name := ""
	if dn := headerSafe.Replace(p.Display); dn != "" {
		name = `"` + dn + `" `
	}
	id := name + "<" + uri + ">"
	if !allows(d.allow, sip.UPDATE) {
		ch.core.log.Debug("identity not sent: the phone does not allow UPDATE", "call", ch.id)
		return
	}
	req := d.request(sip.UPDATE)
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", id))
	req.AppendHeader(sip.NewHeader("Remote-Party-ID", id+";party=calling;screen=yes;privacy=off"))
	ctx, cancel := context.WithTimeout(ch.ctx, 5*time.Second)
	defer cancel()
	res, err := ch.core.do(ctx, d, req)
	if err != nil {
		ch.core.log.Debug("identity update failed", "call", ch.id, "err", err)
		return
	}
	ch.core.log.Debug("identity update answered", "call", ch.id, "status", res.StatusCode)
}

// allows reports whether an Allow header's value lists method.
func allows(allow string, method sip.RequestMethod) bool {
	for _, m := range strings.Split(allow, ",") {
		if strings.EqualFold(strings.TrimSpace(m), string(method)) {
			return true
		}
	}
	return false
}
