package events

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/callpark/callpark/internal/tick"
)

// NodeChange kinds.
const (
	NodeJoined    = "joined"    // first heard of
	NodeRestarted = "restarted" // heard of with a new epoch: its legs are gone
	NodeLost      = "lost"      // said it leaves, or silent for NodeTimeout
)

// NodeChange is a change in the cluster's membership.
type NodeChange struct {
	Kind string
	Node string
	// Epoch is the node's run (the new one when restarted); Previous the
	// one that ended (restarted, lost).
	Epoch, Previous string
}

// Nodes is the table of cores heard of through their announcements
// (SubscribeAnnouncements feeds Observe). Core and control planes of one
// process share one.
type Nodes struct {
	mu       sync.Mutex
	nodes    map[string]nodeEntry
	watchers []func(NodeChange)
	now      func() time.Time
}

type nodeEntry struct {
	ann  Announcement
	seen time.Time
}

// NewNodes returns an empty table.
func NewNodes() *Nodes { return &Nodes{nodes: map[string]nodeEntry{}, now: time.Now} }

// OnChange calls fn (on the goroutine that saw it) for every change from
// now on.
func (n *Nodes) OnChange(fn func(NodeChange)) {
	n.mu.Lock()
	n.watchers = append(n.watchers, fn)
	n.mu.Unlock()
}

// Observe records an announcement.
func (n *Nodes) Observe(a *Announcement) {
	n.mu.Lock()
	old, known := n.nodes[a.Node]
	var ch *NodeChange
	switch {
	case a.Leaving:
		delete(n.nodes, a.Node)
		if known {
			ch = &NodeChange{Kind: NodeLost, Node: a.Node, Previous: old.ann.Epoch}
		}
	case !known:
		n.nodes[a.Node] = nodeEntry{ann: *a, seen: n.now()}
		ch = &NodeChange{Kind: NodeJoined, Node: a.Node, Epoch: a.Epoch}
	default:
		n.nodes[a.Node] = nodeEntry{ann: *a, seen: n.now()}
		if old.ann.Epoch != a.Epoch {
			ch = &NodeChange{Kind: NodeRestarted, Node: a.Node, Epoch: a.Epoch, Previous: old.ann.Epoch}
		}
	}
	watchers := slices.Clone(n.watchers)
	n.mu.Unlock()
	if ch != nil {
		for _, w := range watchers {
			w(*ch)
		}
	}
}

// Sweep forgets the nodes silent for NodeTimeout, reporting each lost.
func (n *Nodes) Sweep() {
	n.mu.Lock()
	var lost []NodeChange
	for id, e := range n.nodes {
		if n.now().Sub(e.seen) > NodeTimeout {
			delete(n.nodes, id)
			lost = append(lost, NodeChange{Kind: NodeLost, Node: id, Previous: e.ann.Epoch})
		}
	}
	watchers := slices.Clone(n.watchers)
	n.mu.Unlock()
	for _, ch := range lost {
		for _, w := range watchers {
			w(ch)
		}
	}
}

// Run sweeps until ctx ends.
func (n *Nodes) Run(ctx context.Context) {
	tick.Every(ctx, NodeTimeout/7, n.Sweep)
}

// Addr returns the SIP address of a live node.
func (n *Nodes) Addr(node string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.nodes[node]
	return e.ann.SIP, ok
}

// Alive reports whether node is live.
func (n *Nodes) Alive(node string) bool {
	_, ok := n.Addr(node)
	return ok
}

// List returns the live nodes' last announcements, by node name.
func (n *Nodes) List() []Announcement {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Announcement, 0, len(n.nodes))
	for _, e := range n.nodes {
		out = append(out, e.ann)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
