package control

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/tick"
)

// A cluster runs one control plane per node. The customers are split into
// Partitions by a hash of their name; a partition is handled by the control
// plane holding its lease (Leases, a JetStream KV bucket), so the events of
// one call, and every decision about a customer's parks, slots and returns,
// are taken by exactly one control plane at a time, in order. The lease
// holder renews it every LeaseTTL/3; when a node dies its leases expire and
// the others take them (KV Create: one winner), restoring the partition's
// parked calls and their automatic-return deadlines from the parked bucket
// and its registrations from the location bucket. Nothing here is a
// consensus of our own: JetStream's is.

// Cluster makes a control plane one of several (Config.Cluster).
type Cluster struct {
	// Node is this process's node (events.ValidNode).
	Node string
	// Leases holds the partitions (LeasesKV).
	Leases Leases
	// Locations are every node's registrations (LocationsKV).
	Locations *LocationsKV
	// Partitions is how many parts the customers are split into
	// (default 8); every node must agree.
	Partitions int
}

// DefaultPartitions is Cluster.Partitions when zero.
const DefaultPartitions = 8

// partitions is what this control plane holds.
type partitions struct {
	mu   sync.Mutex
	held []uint64 // lease revision per partition; 0: not ours
	// until is when each held lease may have expired on the server: the
	// last renewal's start plus LeaseTTL, less a margin for clock rates.
	// Past it, this control plane stops deciding for the partition even
	// before a failed renewal says so (a paused process must not act on a
	// lease another node may hold by now).
	until []time.Time
}

// leaseMargin is taken off a lease's life when judging it still ours.
const leaseMargin = 500 * time.Millisecond

// partitionOf returns the partition of customer among n.
func partitionOf(customer string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(customer))
	return int(h.Sum32() % uint32(n))
}

func leaseKey(p int) string { return "p" + strconv.Itoa(p) }

// owns reports whether this control plane decides for customer.
func (c *Control) owns(customer string) bool {
	if c.cluster == nil {
		return true
	}
	c.parts.mu.Lock()
	defer c.parts.mu.Unlock()
	p := partitionOf(customer, len(c.parts.held))
	return c.parts.held[p] != 0 && time.Now().Before(c.parts.until[p])
}

// Owns reports whether this control plane decides for customer now.
func (c *Control) Owns(customer string) bool { return c.owns(customer) }

// Owner returns the node deciding for customer now: this one (mine), or
// the holder of its partition's lease ("" when nobody holds it yet).
func (c *Control) Owner(customer string) (node string, mine bool) {
	if c.cluster == nil || c.owns(customer) {
		if c.cluster != nil {
			return c.cluster.Node, true
		}
		return "", true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p := partitionOf(customer, len(c.parts.held))
	holder, err := c.cluster.Leases.Holder(ctx, leaseKey(p))
	if err != nil || holder == c.cluster.Node {
		return "", false // ours a moment ago or soon: not settled
	}
	return holder, false
}

// Owned returns the partitions this control plane holds (tests, metrics).
func (c *Control) Owned() []int {
	if c.cluster == nil {
		return nil
	}
	c.parts.mu.Lock()
	defer c.parts.mu.Unlock()
	var out []int
	for p, rev := range c.parts.held {
		if rev != 0 {
			out = append(out, p)
		}
	}
	return out
}

// runLeases takes and keeps partitions until ctx ends, then gives them up
// so that the others take over at once. first is closed after the first
// round.
func (c *Control) runLeases(ctx context.Context, first chan<- struct{}) {
	// Wait until every live node has announced itself: a partition taken
	// over is restored judging each parked leg's node alive or not.
	select {
	case <-time.After(events.NodeTimeout):
	case <-ctx.Done():
		close(first)
		return
	}
	c.leaseRound(ctx)
	close(first)
	tick.Every(ctx, LeaseTTL/3, func() { c.leaseRound(ctx) })
	if !c.crashed.Load() {
		c.releaseAll()
	}
}

func (c *Control) leaseRound(ctx context.Context) {
	cl := c.cluster
	for p := range len(c.parts.held) {
		c.parts.mu.Lock()
		rev := c.parts.held[p]
		c.parts.mu.Unlock()
		lctx, cancel := context.WithTimeout(ctx, LeaseTTL/3)
		sent := time.Now()
		if rev != 0 {
			next, err := cl.Leases.Renew(lctx, leaseKey(p), cl.Node, rev)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					c.losePartition(p, err)
				}
				continue
			}
			c.parts.mu.Lock()
			c.parts.held[p] = next
			c.parts.until[p] = sent.Add(LeaseTTL - leaseMargin)
			c.parts.mu.Unlock()
			continue
		}
		next, ok, err := cl.Leases.Acquire(lctx, leaseKey(p), cl.Node)
		cancel()
		if err != nil || !ok {
			continue
		}
		c.parts.mu.Lock()
		c.parts.held[p] = next
		c.parts.until[p] = sent.Add(LeaseTTL - leaseMargin)
		c.parts.mu.Unlock()
		c.takePartition(ctx, p)
	}
}

// takePartition loads what a partition's previous holder left.
func (c *Control) takePartition(ctx context.Context, p int) {
	n := len(c.parts.held)
	keep := func(customer string) bool { return partitionOf(customer, n) == p }
	c.metrics.partitions.Inc()
	c.log.Info("partition taken", "partition", p, "node", c.cluster.Node)
	if l := c.cluster.Locations; l != nil {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		regs, err := l.Load(lctx, keep, c.now())
		cancel()
		if err != nil {
			c.log.Warn("registrations not loaded", "partition", p, "err", err)
		}
		for _, e := range regs {
			c.onRegistration(ctx, e)
		}
	}
	c.restore(ctx, keep)
	c.resyncLamps()
}

// losePartition forgets a partition whose lease could not be renewed:
// another node holds it now (or will), and this one must not act for it.
// Its parks leave the local state only (the store keeps them).
func (c *Control) losePartition(p int, why error) {
	c.parts.mu.Lock()
	c.parts.held[p] = 0
	n := len(c.parts.held)
	c.parts.mu.Unlock()
	c.metrics.partitions.Dec()
	c.log.Error("partition lost", "partition", p, "err", why)
	for _, ch := range c.store.Channels() {
		if partitionOf(ch.Customer, n) == p {
			c.store.UnparkChannel(ch.ID)
			c.store.DeleteChannel(ch.ID)
		}
	}
}

// Crash makes the coming stop that of a node that dies: the partitions
// are not given up, the others take them when the leases expire. For tests.
func (c *Control) Crash() { c.crashed.Store(true) }

// releaseAll gives every held partition up (shutdown).
func (c *Control) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.parts.mu.Lock()
	held := append([]uint64(nil), c.parts.held...)
	for p := range c.parts.held {
		c.parts.held[p] = 0
	}
	c.parts.mu.Unlock()
	for p, rev := range held {
		if rev != 0 {
			_ = c.cluster.Leases.Release(ctx, leaseKey(p), rev)
		}
	}
}

// onNodeChange reacts to a core joining, restarting or being lost: the
// legs of a node that is gone went with it, and a core that (re)joined
// gets every lamp.
func (c *Control) onNodeChange(ctx context.Context, ch events.NodeChange) {
	c.log.Info("node "+ch.Kind, "node", ch.Node, "epoch", ch.Epoch)
	switch ch.Kind {
	case events.NodeLost, events.NodeRestarted:
		c.nodeGone(ctx, ch.Node)
	}
	if ch.Kind != events.NodeLost {
		c.resyncLamps()
	}
}

// nodeGone reports the calls parked on node lost and forgets its legs; a
// leg elsewhere bridged with one of them is hung up.
func (c *Control) nodeGone(ctx context.Context, node string) {
	if n := c.store.DeleteRegistrationsVia(node); n > 0 {
		c.log.Info("registrations through a lost node forgotten", "node", node, "accounts", n)
	}
	for _, ch := range c.store.Channels() {
		if events.NodeOf(ch.ID) != node || !c.owns(ch.Customer) {
			continue
		}
		if p, _ := c.store.UnparkChannel(ch.ID); p != nil {
			c.metrics.lost.Inc()
			c.log.Warn("parked call lost with its node", "customer", p.Customer, "number", p.Number, "call", p.Channel, "node", node)
			c.publish(events.CallLost, p.Customer, p.Channel, p.Event())
		}
		c.store.DeleteChannel(ch.ID)
		if peer := c.store.Channel(ch.Peer); peer != nil && peer.Peer == ch.ID && events.NodeOf(peer.ID) != node {
			c.hangup(ctx, peer.Customer, peer.ID)
		}
	}
}

// legGone reports whether leg's node is known to be gone.
func (c *Control) legGone(leg string) bool {
	if c.nodes == nil || time.Since(c.startedAt) < events.NodeTimeout {
		return false // not every live node has announced itself yet
	}
	n := events.NodeOf(leg)
	return n != "" && !c.nodes.Alive(n)
}

// via picks the node a dial for account reaches it through: the node of
// the leg it is dialed for when the account registered there, else the
// first other node it registered through ("" : the leg's own).
func (c *Control) via(customer, account, leg string) string {
	here := events.NodeOf(leg)
	var others []string
	for _, n := range c.store.RegisteredVia(customer, account) {
		if n == here || n == "" {
			return ""
		}
		if c.nodes == nil || c.nodes.Alive(n) {
			others = append(others, n)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return others[0]
}

// onRinging: a leg dialed for a caller on another node rings; that node's
// core cannot know it, so the caller is sent 180 from here (on one node
// the core does it itself).
func (c *Control) onRinging(ctx context.Context, e *events.Event) {
	peer := events.NodeOf(e.DialedFor)
	if peer == "" || peer == e.Node || e.Node == "" {
		return
	}
	if ch := c.store.Channel(e.DialedFor); ch != nil && ch.Direction == events.Inbound && ch.State == state.StateRinging {
		c.do(ctx, e.Customer, &events.Command{Op: events.OpRing, Call: e.DialedFor})
	}
}

// lostRecord reports a persisted park whose leg is gone.
func (c *Control) lostRecord(p *state.Parked) {
	c.metrics.lost.Inc()
	c.publish(events.CallLost, p.Customer, p.Channel, p.Event())
	if p.Kind == state.KindSlot {
		c.publishSlot(events.SlotFree, p)
	}
}

func (cl *Cluster) validate() error {
	if !events.ValidNode(cl.Node) {
		return fmt.Errorf("control: invalid node %q", cl.Node)
	}
	if cl.Leases == nil {
		return fmt.Errorf("control: a cluster needs Leases")
	}
	if cl.Partitions == 0 {
		cl.Partitions = DefaultPartitions
	}
	return nil
}
