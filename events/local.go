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
//
// Events leave for NATS from one goroutine (Run), in the order they were
// published: a call's goroutine never waits for the NATS connection (its
// writes are one at a time; under load, hundreds of calls queued on its
// lock). Up to MaxQueued events wait; past that, publishing waits.
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

	qmu     sync.Mutex
	qcond   *sync.Cond // queued or taken (under qmu)
	queue   []*Event
	running bool
	stopped bool
}

// MaxQueued is how many events may wait for NATS before publishing waits.
const MaxQueued = 1 << 16

// Run publishes queued events to NATS until ctx ends, then what is left.
func (l *Local) Run(ctx context.Context) error {
	l.init()
	l.qmu.Lock()
	l.running = true
	l.qmu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		l.qmu.Lock()
		l.stopped = true
		l.qmu.Unlock()
		l.qcond.Broadcast()
	})
	defer stop()
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && !l.stopped {
			l.qcond.Wait()
		}
		batch := l.queue
		l.queue = nil
		stopped := l.stopped
		l.qmu.Unlock()
		l.qcond.Broadcast() // room again
		for _, e := range batch {
			l.Bus.Publish(e)
		}
		if stopped && len(batch) == 0 {
			l.qmu.Lock()
			l.running = false
			l.qmu.Unlock()
			return nil
		}
	}
}

func (l *Local) init() {
	l.qmu.Lock()
	if l.qcond == nil {
		l.qcond = sync.NewCond(&l.qmu)
	}
	l.qmu.Unlock()
}

// Publish sends an event to NATS, from the publishing goroutine (Run).
func (l *Local) Publish(e *Event) {
	e.Stamp()
	l.init()
	l.qmu.Lock()
	if !l.running || l.stopped {
		l.qmu.Unlock()
		l.Bus.Publish(e) // not running (yet, or any more): at once
		return
	}
	for len(l.queue) >= MaxQueued && !l.stopped {
		l.qcond.Wait()
	}
	l.queue = append(l.queue, e)
	l.qmu.Unlock()
	l.qcond.Broadcast()
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

// PublishCore publishes an event of this node's core: to this process's
// control plane at once, and to NATS.
func (l *Local) PublishCore(e *Event) {
	l.Publish(e) // stamped first: the control plane gets it complete
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
