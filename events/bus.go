package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that keeps every event for replay.
const StreamName = "CALLPARK_EVENTS"

// Bus is callpark's NATS connection: it publishes events, sends and serves
// core commands.
type Bus struct {
	nc  *nats.Conn
	log *slog.Logger
	// up mirrors nc.IsConnected (Connected), kept by watch.
	up atomic.Bool
	// OnPublishError, when set, counts failed publishes (metrics).
	OnPublishError func()
	// DefaultNode gets the commands for legs whose id names no node
	// (DefaultNode's own default: "n1", a single node's name).
	DefaultNode string
	// encoding holds the buffers events are encoded into: NATS copies a
	// message as it publishes it, so each buffer serves again.
	encoding sync.Pool
}

// Connect dials NATS at url; opts add to the defaults (credentials).
func Connect(url, name string, log *slog.Logger, opts ...nats.Option) (*Bus, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", url, err)
	}
	b := &Bus{nc: nc, log: log}
	changes := nc.StatusChanged()
	b.up.Store(nc.IsConnected())
	go b.watch(changes)
	return b, nil
}

// Connected reports whether the connection is up, without taking the
// connection's lock: the core asks on every new call, and while events
// are being published that lock is seldom free (under load, new calls
// queued on it behind the publisher).
func (b *Bus) Connected() bool { return b.up.Load() }

// watch keeps up current until the connection is closed. Each change
// reads the connection's own state rather than trusting the reported
// one: the listener's buffer drops changes while it is full, and the
// state read after the last change seen is the current one.
func (b *Bus) watch(changes chan nats.Status) {
	defer b.nc.RemoveStatusListener(changes)
	for st := range changes {
		b.up.Store(b.nc.IsConnected())
		if st == nats.CLOSED || b.nc.IsClosed() {
			return
		}
	}
}

// Conn returns the underlying connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Close drains and closes the connection.
func (b *Bus) Close() error {
	if b.nc.IsClosed() {
		return nil
	}
	return b.nc.Drain()
}

// EnsureStream creates or updates the JetStream stream holding every event,
// kept for maxAge.
//
// A new stream is written in batches (AsyncPersistMode): events are
// published without waiting for an acknowledgement, so nothing is gained
// by writing each to the file as it comes, and that write was a twentieth
// of the process's CPU at 700 park+retrieve cycles a second. What a hard
// kill (not a graceful stop, which flushes) can lose is the last moment's
// events of the replay; live subscribers have had them. The server
// refuses to change a stream's persist mode, so a stream made before
// keeps its own (delete the stream to have the new one).
func (b *Bus) EnsureStream(ctx context.Context, maxAge time.Duration) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return err
	}
	mode := jetstream.AsyncPersistMode
	if st, err := js.Stream(ctx, StreamName); err == nil {
		mode = st.CachedInfo().Config.PersistMode
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      StreamName,
		Subjects:  []string{AllEvents},
		Retention: jetstream.LimitsPolicy,
		MaxAge:    maxAge,
		// Live subjects carry the call id; stored, that token is "_"
		// (StoredSubject), so the stream's subject index holds customers
		// × sources × types instead of growing with every call for a day
		// (it was most of what the process kept after a load). The call
		// id is in every event's body.
		SubjectTransform: &jetstream.SubjectTransformConfig{Source: storedSource, Destination: storedDestination},
		MaxBytes:         512 << 20,
		Storage:          jetstream.FileStorage,
		Discard:          jetstream.DiscardOld,
		PersistMode:      mode,
	})
	return err
}

// The event stream's subject transform: the call token of
// callpark.v1.events.<customer>.<source>.<call>.<type, two tokens>
// becomes "_".
const (
	storedSource      = EventsPrefix + ".*.*.*.*.*"
	storedDestination = EventsPrefix + ".{{wildcard(1)}}.{{wildcard(2)}}._.{{wildcard(4)}}.{{wildcard(5)}}"
)

// StoredSubject is the subject an event is kept under in the event
// stream: its live subject with the call token "_". Filters that name a
// customer, a source or a type match both; one naming a call id matches
// only live events.
func StoredSubject(customer, source, typ string) string {
	return EventSubject(customer, source, "", typ)
}

// Publish sends an event. Errors are logged and counted, never fatal: a
// missing subscriber must not break a call.
func (b *Bus) Publish(e *Event) {
	buf, _ := b.encoding.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	err := e.EncodeTo(buf)
	if err == nil {
		err = b.nc.Publish(e.Subject(), buf.Bytes())
	}
	if buf.Cap() <= 64<<10 {
		buf.Reset()
		b.encoding.Put(buf)
	}
	if err != nil {
		if b.OnPublishError != nil {
			b.OnPublishError()
		}
		b.log.Warn("publish event failed", "type", e.Type, "call", e.Call, "err", err)
	}
}

// SubscribeEvents delivers every event matching subject to fn, in order, on
// one goroutine of the NATS client.
func (b *Bus) SubscribeEvents(subject string, fn func(*Event)) (*nats.Subscription, error) {
	return b.nc.Subscribe(subject, func(m *nats.Msg) {
		e, err := DecodeEvent(m.Data)
		if err != nil {
			b.log.Warn("dropping bad event", "subject", m.Subject, "err", err)
			return
		}
		fn(e)
	})
}

// Do sends a command to the core and waits for its reply.
func (b *Bus) Do(ctx context.Context, c *Command) (*Reply, error) {
	data, err := c.Encode()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	node := c.TargetNode()
	if node == "" {
		node = b.DefaultNode
	}
	if node == "" {
		node = "n1"
	}
	m, err := b.nc.RequestWithContext(ctx, CommandSubject(node, c.Op), data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, &ReplyError{Op: c.Op, Code: ErrUnavailable, Msg: "no core is running on node " + node}
		}
		return nil, fmt.Errorf("core %s: %w", c.Op, err)
	}
	var r Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("core %s: bad reply: %w", c.Op, err)
	}
	return &r, r.Err(c.Op)
}

// CommandHandler executes one command. It runs on its own goroutine.
type CommandHandler func(ctx context.Context, c *Command) *Reply

// ServeCommands answers the commands for node (and for AllNodes) with h
// until ctx ends. Each request runs on its own goroutine, so a slow command
// (answer waits for ACK) never holds up others.
func (b *Bus) ServeCommands(ctx context.Context, node string, h CommandHandler) error {
	handle := func(m *nats.Msg) {
		go func() {
			c, err := DecodeCommand(m.Data)
			var r *Reply
			if err != nil {
				r = &Reply{Code: ErrInvalidRequest, Error: err.Error()}
			} else {
				r = h(ctx, c)
			}
			if err := m.Respond(r.Encode()); err != nil {
				b.log.Warn("command reply failed", "err", err)
			}
		}()
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, n := range []string{node, AllNodes} {
		sub, err := b.nc.Subscribe(CorePrefix+"."+n+".cmd.>", handle)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	<-ctx.Done()
	return nil
}

// Announce publishes a core's announcement.
func (b *Bus) Announce(a *Announcement) {
	if err := b.nc.Publish(AnnounceSubject(a.Node), a.Encode()); err != nil {
		b.log.Warn("announce failed", "node", a.Node, "err", err)
	}
	if a.Leaving {
		_ = b.nc.FlushTimeout(500 * time.Millisecond)
	}
}

// SubscribeAnnouncements delivers every core's announcements to fn.
func (b *Bus) SubscribeAnnouncements(fn func(*Announcement)) (*nats.Subscription, error) {
	return b.nc.Subscribe(AllAnnouncements, func(m *nats.Msg) {
		a, err := DecodeAnnouncement(m.Data)
		if err != nil {
			b.log.Warn("dropping bad announcement", "subject", m.Subject, "err", err)
			return
		}
		fn(a)
	})
}
