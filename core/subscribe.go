package core

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/presence"
	"github.com/callpark/callpark/events"
)

// newPresence builds the BLF notifier: NOTIFYs leave from the core's own
// SIP address, so phones see them come from where they subscribed.
func (c *Core) newPresence() (*presence.Server, error) {
	pc := c.cfg.Presence
	pc.Send = func(ctx context.Context, req *sip.Request) (*sip.Response, error) { return c.client.Do(ctx, req) }
	pc.Contact = sip.Uri{Scheme: "sip", Host: c.cfg.Host, Port: c.cfg.Port}
	pc.Log = c.log.With("component", "presence")
	pc.Registerer = c.cfg.Registerer
	return presence.New(pc)
}

// handleSubscribe answers SUBSCRIBE. The dialog package (BLF keys) is
// authenticated like every request and handed to the notifier, for any
// entity of the subscriber's customer; other packages get 489 Bad Event as
// RFC 6665 asks.
func (c *Core) handleSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	evh := req.GetHeader("Event")
	if evh == nil {
		evh = req.GetHeader("o")
	}
	var pkg string
	if evh != nil {
		pkg, _, _ = presence.ParseEvent(evh.Value())
	}
	if pkg != presence.Package {
		c.metrics.badRequests.WithLabelValues("bad_event").Inc()
		respond(req, tx, 489, "Bad Event", sip.NewHeader("Allow-Events", presence.Package+", refer"))
		return
	}
	// The entity is the Request-URI user of a new subscription; a refresh
	// is sent to our Contact, and its To names the entity.
	user := req.Recipient.User
	if to := req.To(); to != nil && to.Params.Has("tag") {
		user = to.Address.User
	}
	if user == "" {
		c.metrics.badRequests.WithLabelValues("no_entity").Inc()
		respond(req, tx, sip.StatusNotFound, "Not Found")
		return
	}
	if c.draining.Load() {
		if to := req.To(); to == nil || !to.Params.Has("tag") {
			respond(req, tx, sip.StatusServiceUnavailable, "Service Unavailable", sip.NewHeader("Retry-After", "30"))
			return
		}
	}
	who, ok := c.reg.Authenticate(req, tx)
	if !ok {
		return
	}
	c.blf.Subscribe(req, tx.Respond, presence.Entity{Customer: who.Customer, User: user, Domain: who.Domain})
}

// presenceCommand sets an entity's state for its subscribers.
func (c *Core) presenceCommand(cmd *events.Command) *events.Reply {
	if cmd.Customer == "" || cmd.Target == "" {
		return fail(events.ErrInvalidRequest, errors.New("presence needs customer and target"))
	}
	c.blf.Set(cmd.Customer, cmd.Target, presence.State{Busy: cmd.On, Display: cmd.From.Display, User: cmd.From.User})
	return &events.Reply{OK: true}
}

// Presence exposes the BLF notifier (subscription count, entity states).
func (c *Core) Presence() *presence.Server { return c.blf }
