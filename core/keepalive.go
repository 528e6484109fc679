package core

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/internal/tick"
)

// Registrations are kept honest: a phone unplugged without unregistering
// would otherwise be rung (and waited for) until its binding expires. A
// contact that lets a dial fork go unanswered, or that misses a periodic
// keep-alive, is sent one OPTIONS; no answer at all within probeTimeout
// (any response, even an error, proves it alive) removes the binding.

const probeTimeout = 4 * time.Second

// probe checks one binding in the background; concurrent probes of the
// same contact collapse into one.
func (c *Core) probe(customer, account string, contact sip.Uri, source string) {
	key := customer + "\x00" + account + "\x00" + contact.String()
	c.mu.Lock()
	if c.probing[key] {
		c.mu.Unlock()
		return
	}
	c.probing[key] = true
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.probing, key)
			c.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(c.hubsCtx, probeTimeout)
		defer cancel()
		if c.alive(ctx, contact, source) || c.hubsCtx.Err() != nil {
			return
		}
		if c.reg.Remove(customer, account, contact) {
			c.metrics.unreachable.Inc()
		}
	}()
}

// alive sends OPTIONS to contact (at source, where its REGISTER came from)
// and reports whether anything answered.
func (c *Core) alive(ctx context.Context, contact sip.Uri, source string) bool {
	req := sip.NewRequest(sip.OPTIONS, contact)
	if source != "" {
		req.SetDestination(source)
	}
	if tr, ok := contact.UriParams.Get("transport"); ok && contact.UriParams != nil {
		req.SetTransport(strings.ToUpper(tr))
	}
	res, err := c.client.Do(ctx, req)
	return err == nil && res != nil
}

// keepAlive probes every UDP binding each interval until ctx ends.
func (c *Core) keepAlive(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		<-ctx.Done()
		return nil
	}
	tick.Every(ctx, every, func() {
		for _, b := range c.reg.All() {
			if !strings.EqualFold(b.Transport, "udp") {
				continue // a stream connection's own keep-alive tells
			}
			c.probe(b.Customer, b.Account, b.Contact, b.Source)
		}
	})
	return nil
}
