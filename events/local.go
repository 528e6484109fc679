package events

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
)

// Local is the bus of a process that runs a core and a control plane
// together (callparkd's default role): the same messages — Command, Reply,
// Event — but between the two parts of the process they go as they are,
// not through NATS.
//
// A command for this node's core is handed to its handler; a core event is
// handed to the control plane's handler as it is published. Everything
// still goes through NATS for everyone else: each event is published there
// (the event stream, apps, the console), commands for other nodes are
// requests there, and in a cluster the control plane still gets the other
// nodes' core events there. Passed through NATS, each event was encoded,
// sent to the embedded server, routed, sent back and decoded, and each
// command made four such trips with its reply, every one a wake-up of
// another goroutine: a third of the process's work in a park+retrieve
// cycle and most of the control plane's waiting under load.
type Local struct {
	*Bus
	// Node is this process's node: commands for it go to Core.
	Node string
	// Core executes this node's commands (core.Core.HandleCommand).
	Core CommandHandler
	// Cluster: other nodes' cores publish events too, which reach this
	// control plane through NATS.
	Cluster bool

	mu   sync.RWMutex
	sink func(*Event)
}

// Do executes a command: this node's core's at once, another node's over
// NATS.
func (l *Local) Do(ctx context.Context, c *Command) (*Reply, error) {
	node := c.TargetNode()
	if node == "" {
		node = l.DefaultNode
	}
	if node == "" {
		node = "n1"
	}
	if node != l.Node || l.Core == nil {
		return l.Bus.Do(ctx, c)
	}
	if c.V == 0 {
		c.V = Version
	}
	if err := c.Validate(); err != nil {
		return nil, &ReplyError{Op: c.Op, Code: ErrInvalidRequest, Msg: err.Error()}
	}
	r := l.Core(ctx, c)
	return r, r.Err(c.Op)
}

// PublishCore publishes an event of this node's core: to NATS, then to
// this process's control plane.
func (l *Local) PublishCore(e *Event) {
	l.Bus.Publish(e) // encodes first: the control plane gets it complete
	l.mu.RLock()
	sink := l.sink
	l.mu.RUnlock()
	if sink != nil && e.Source == SourceCore {
		sink(e)
	}
}

// SubscribeEvents delivers this node's core events to fn as they are
// published and, in a cluster, the other nodes' matching events from NATS.
// subject must be CoreEvents (the control plane's): other subscriptions
// go to NATS alone.
func (l *Local) SubscribeEvents(subject string, fn func(*Event)) (*nats.Subscription, error) {
	if subject != CoreEvents {
		return l.Bus.SubscribeEvents(subject, fn)
	}
	l.mu.Lock()
	l.sink = fn
	l.mu.Unlock()
	if !l.Cluster {
		return nil, nil
	}
	return l.Bus.SubscribeEvents(subject, func(e *Event) {
		if e.Node != l.Node {
			fn(e)
		}
	})
}
