package pbx

import (
	"context"
	"log/slog"
	"time"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/events"
)

// Nodes is the table of live nodes, once Ready.
func (p *PBX) Nodes() *events.Nodes { return p.nodes }

// jetStreamRetry runs fn until it succeeds: a clustered JetStream takes a
// few seconds to elect its leaders after the servers start (30 s at most);
// a single server gets one 10 s try. Until a clustered JetStream has its
// meta leader its API does not answer at all: short tries.
func jetStreamRetry(ctx context.Context, clustered bool, fn func(context.Context) error) error {
	deadline := time.Now().Add(30 * time.Second)
	try := 10 * time.Second
	if clustered {
		try = 2 * time.Second
	}
	for {
		sctx, cancel := context.WithTimeout(ctx, try)
		err := fn(sctx)
		cancel()
		if err == nil || !clustered || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// clusterSecret is what signs internal legs (nil: the core picks one).
func clusterSecret(cl *Cluster) []byte {
	if cl == nil {
		return nil
	}
	return []byte(cl.Secret)
}

// publishVia publishes the core's events (to this process's control plane
// too, through local, when it runs here); in a cluster it also keeps this
// node's registrations in the location bucket, where a control plane that
// takes a partition over finds them.
func publishVia(bus *events.Bus, local *events.Local, locations *control.LocationsKV, log *slog.Logger) func(*events.Event) {
	publish := bus.Publish
	if local != nil {
		publish = local.PublishCore
	}
	if locations == nil {
		return publish
	}
	return func(e *events.Event) {
		publish(e)
		if e.Type != events.RegistrationUpdated {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := locations.Put(ctx, e); err != nil {
			log.Warn("registration not stored in the location bucket", "account", e.Account, "err", err)
		}
	}
}

// Crash makes the coming stop (Run's ctx ending) that of a node that dies:
// no BYE, no goodbye announcement, no lease given up. For tests of node
// loss; the embedded NATS server still shuts down (its routes drop).
func (p *PBX) Crash() {
	if p.core != nil {
		p.core.Crash()
	}
	if p.control != nil {
		p.control.Crash()
	}
}

// announce publishes the core's announcement with this node's console URL.
func (p *PBX) announce(a *events.Announcement) {
	if u, ok := p.web.Load().(string); ok {
		a.Web = u
	}
	p.bus.Announce(a)
}

// consoleElsewhere says, in a cluster, which other node's console serves a
// customer: the one whose control plane decides for it.
func (p *PBX) consoleElsewhere(ctl *control.Control) func(string) (string, bool) {
	if p.cfg.Cluster == nil {
		return nil
	}
	return func(customer string) (string, bool) {
		node, mine := ctl.Owner(customer)
		if mine || node == "" {
			return "", false
		}
		for _, a := range p.nodes.List() {
			if a.Node == node && a.Web != "" {
				return a.Web, true
			}
		}
		return "", false
	}
}
