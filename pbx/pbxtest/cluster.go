package pbxtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx"
)

// StartCluster runs n callpark nodes ("a", "b", ...) in this process, each
// with its own SIP port and embedded NATS server, the servers clustered
// (routes and JetStream, KV buckets replicated on min(n, 3)), and waits
// until every node is ready. opts apply to every node.
func StartCluster(t testing.TB, n int, opts ...Option) []*PBX {
	t.Helper()
	nodes := make([]*PBX, n)
	for i, cfg := range ClusterConfigs(t, n, opts...) {
		nodes[i] = launch(t, cfg)
	}
	// The nodes wait for each other (a clustered JetStream needs its
	// quorum): wait for them together.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, p := range nodes {
		wg.Go(func() { errs[i] = p.waitErr(60 * time.Second) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// ClusterConfigs are the configs of the n nodes StartCluster starts: nodes
// a, b, c…, each with its own NATS server routed to the others.
func ClusterConfigs(t testing.TB, n int, opts ...Option) []pbx.Config {
	t.Helper()
	type ports struct{ client, route int }
	ps := make([]ports, n)
	for i := range ps {
		ps[i] = ports{FreePort(t), FreePort(t)}
	}
	secret := fmt.Sprintf("cluster-secret-%d", time.Now().UnixNano())
	cfgs := make([]pbx.Config, n)
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ps[j].route))
			}
		}
		cfg := Config(t, opts...)
		cfg.Node = string(rune('a' + i))
		cfg.NATSPort = ps[i].client
		cfg.NATSPassword = secret // one service password on every server
		cfg.Cluster = &pbx.Cluster{Port: ps[i].route, Routes: routes, Secret: secret, Replicas: min(n, 3)}
		cfgs[i] = cfg
	}
	return cfgs
}

// Owner returns the node whose control plane decides for customer now.
func Owner(nodes []*PBX, customer string) *PBX {
	for _, p := range nodes {
		if c := p.Control(); c != nil && c.Owns(customer) {
			return p
		}
	}
	return nil
}

// WaitLocated waits until the control plane deciding for customer knows
// that ext registered through node via: a call to ext placed on another
// node before that is dialed where ext is not (the location is learnt
// from an event, a few milliseconds after the REGISTER).
func WaitLocated(t testing.TB, nodes []*PBX, via *PBX, customer, ext string) {
	t.Helper()
	node := via.Core().Node()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if o := Owner(nodes, customer); o != nil {
			for _, n := range o.Control().State().RegisteredVia(customer, ext) {
				if n == node {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s@%s through node %s: not known to the control plane within 5s", ext, customer, node)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
