package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/deadline"
	"github.com/callpark/callpark/internal/throttle"
)

// Bus is what Control needs of NATS; *events.Bus implements it.
type Bus interface {
	// Do sends a command to the core and waits for its reply.
	Do(ctx context.Context, c *events.Command) (*events.Reply, error)
	// Publish sends an event; failures are the bus's to log.
	Publish(e *events.Event)
	// SubscribeEvents delivers the events matching subject to fn.
	SubscribeEvents(subject string, fn func(*events.Event)) (*nats.Subscription, error)
}

// Config holds Control's dependencies.
type Config struct {
	Bus Bus
	// Dialplans returns the dialplan set in force (e.g. a
	// dialplans.Store's Current); it is called once per event.
	Dialplans func() *dialplans.Set
	Log       *slog.Logger
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Workers is the number of event workers; 0 means DefaultWorkers.
	Workers int
	// Rand draws random park numbers; nil seeds one from the runtime.
	Rand *rand.Rand
	// ShedAfter: while the oldest unhandled event is older than this,
	// new extension calls get 503 (default 1s; negative: never). See shed.go.
	ShedAfter time.Duration
	// Persist, when set, keeps parked calls and their automatic-return
	// deadlines across restarts of a control plane that runs apart from
	// the core (see NewParkedKV).
	Persist ParkedStore
	// Nodes, when set, is the table of live cores: the parked calls of a
	// core that restarts or is lost are reported lost (call.lost), and a
	// core that (re)joins is sent every lamp.
	Nodes *events.Nodes
	// Cluster, when set, makes this control plane one of several: it
	// decides only for the customers of the partitions it holds
	// (cluster.go). It needs Persist and Nodes.
	Cluster *Cluster
	// SlotResync is how often the lamps of slots whose state the core may
	// have missed are sent again (default 2s); SlotFullResync how often
	// every lamp is, without a node table to say when (default 5m).
	SlotResync, SlotFullResync time.Duration
}

// DefaultWorkers is the worker count when Config.Workers is 0.
const DefaultWorkers = 64

// Control is the parking application. Create it with New, then Run it.
type Control struct {
	shedAfter time.Duration
	convs     atomic.Pointer[conversations]
	bus       Bus
	dialplans func() *dialplans.Set
	log       *slog.Logger
	// noisy logs what load can repeat thousands of times a second (a
	// refusal per call under overload): throttled per message.
	noisy   *slog.Logger
	store   *state.Store
	metrics *metrics
	workers int
	now     func() time.Time

	// ready is closed once Run has subscribed and restored persisted parks;
	// stopping once its ctx has ended (tasks give up waiting then).
	ready, stopping chan struct{}

	randMu sync.Mutex // guards rand, which is not safe for concurrent use
	rand   *rand.Rand

	// returnsDue says when parked calls are due for their automatic return
	// (autoreturn.go), keyed by the parked leg.
	returnsDue *deadline.Scheduler
	// dialDeadlines says when a pending dial is no longer waited for
	// (dials.go), keyed by the dial's id.
	dialDeadlines *deadline.Scheduler
	// dialIDs names this Control's dials (dials.go).
	dialIDs dialNamer
	// tasks is the work handlers start that outlives them (automatic returns, API
	// retrievals waiting for their dial); Run waits for it.
	tasks   sync.WaitGroup
	persist *persister // nil without Config.Persist
	nodes   *events.Nodes
	cluster *Cluster
	parts   partitions
	// lamps is the slot lamps' full-resync trigger (slots.go).
	lamps chan struct{}
	// slotResync and slotFullResync pace the lamp resyncs (slots.go).
	slotResync, slotFullResync time.Duration
	startedAt                  time.Time
	crashed                    atomic.Bool
}

// New checks cfg and returns a Control with an empty state.
func New(cfg Config) (*Control, error) {
	if cfg.Bus == nil {
		return nil, errors.New("control: no Bus")
	}
	if cfg.Dialplans == nil {
		return nil, errors.New("control: no Dialplans")
	}
	if cfg.Log == nil {
		return nil, errors.New("control: no Log")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("control: Workers %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Cluster != nil {
		if err := cfg.Cluster.validate(); err != nil {
			return nil, err
		}
		if cfg.Persist == nil || cfg.Nodes == nil {
			return nil, errors.New("control: a cluster needs Persist and Nodes")
		}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	store, err := state.New()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, store)
	if err != nil {
		return nil, fmt.Errorf("control: metrics: %w", err)
	}
	c := &Control{
		bus:       cfg.Bus,
		dialplans: cfg.Dialplans,
		log:       cfg.Log,
		noisy:     slog.New(throttle.New(cfg.Log.Handler(), throttle.Options{})),
		store:     store,
		metrics:   m,
		workers:   cfg.Workers,
		now:       time.Now,
		rand:      cfg.Rand,

		returnsDue:    deadline.NewScheduler(),
		dialDeadlines: deadline.NewScheduler(),
		dialIDs:       newDialNamer(cfg.Rand),
		shedAfter:     cfg.ShedAfter,
		ready:         make(chan struct{}),
		stopping:      make(chan struct{}),
		nodes:         cfg.Nodes,
		cluster:       cfg.Cluster,
		lamps:         make(chan struct{}, 1),

		slotResync:     cmp.Or(cfg.SlotResync, 2*time.Second),
		slotFullResync: cmp.Or(cfg.SlotFullResync, 5*time.Minute),
	}
	if cfg.Cluster != nil {
		c.parts.held = make([]uint64, cfg.Cluster.Partitions)
		c.parts.until = make([]time.Time, cfg.Cluster.Partitions)
	}
	if c.shedAfter == 0 {
		c.shedAfter = time.Second
	}
	if cfg.Persist != nil {
		c.persist = newPersister(cfg.Persist, store, cfg.Log)
		c.persist.owns = c.owns
	}
	store.OnParked(c.onParkChange)
	return c, nil
}

// Ready is closed once Run receives events and has restored the parks it
// persisted: from then on, a call it is told of is handled.
func (c *Control) Ready() <-chan struct{} { return c.ready }

// bounded is a context for commands sent outside any handler's context
// (from a store observer): it ends when Run stops, or after taskTimeout.
func (c *Control) bounded() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), taskTimeout)
	go func() { // ends with ctx: the caller cancels it when done
		select {
		case <-c.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// taskTimeout bounds the commands of a bounded context.
const taskTimeout = 10 * time.Second

// State returns the control plane's state, for tests and the API.
func (c *Control) State() *state.Store { return c.store }

// Run subscribes to every event and handles them until ctx ends. Events of
// one leg are handled in order, on one of Workers goroutines.
func (c *Control) Run(ctx context.Context) error {
	c.startedAt = time.Now()
	var wg sync.WaitGroup
	c.startSlots(ctx, &wg) // slot lamps and events: control/slots.go
	seq := newSequencer()
	convs := newConversations(seq)
	c.convs.Store(convs)
	for range c.workers {
		wg.Go(func() { convs.work(ctx, func(e *events.Event) { c.HandleEvent(ctx, e) }) })
	}
	wg.Go(func() { c.returnsDue.Run(ctx, func(ch string) { c.fireReturn(ctx, ch) }) })
	wg.Go(func() { c.dialDeadlines.Run(ctx, c.dialExpired) })
	if c.persist != nil {
		wg.Go(func() { c.persist.run(ctx) })
	}
	if c.nodes != nil {
		// Changes are handed to a goroutine of this Run: the table
		// outlives it.
		changes := make(chan events.NodeChange, 256)
		c.nodes.OnChange(func(ch events.NodeChange) {
			select {
			case changes <- ch:
			default:
				c.log.Error("node change dropped (queue full)", "node", ch.Node, "kind", ch.Kind)
			}
		})
		wg.Go(func() {
			for {
				select {
				case ch := <-changes:
					c.onNodeChange(ctx, ch)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	sub, err := c.bus.SubscribeEvents(events.CoreEvents, func(e *events.Event) {
		if c.owns(e.Customer) {
			convs.push(orderKey(e), e)
		}
	})
	if err != nil {
		err = fmt.Errorf("control: subscribe: %w", err)
	} else {
		c.log.Info("control plane running", "workers", c.workers, "subject", events.CoreEvents)
		if c.cluster != nil {
			first := make(chan struct{})
			wg.Go(func() { c.runLeases(ctx, first) })
			<-first
		} else {
			c.restore(ctx, func(string) bool { return true })
		}
		close(c.ready)
		<-ctx.Done()
		if sub != nil {
			if uerr := sub.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) {
				c.log.Warn("unsubscribe failed", "err", uerr)
			}
		}
	}
	close(c.stopping)
	convs.close()
	wg.Wait()
	c.tasks.Wait()
	return err
}

// orderKey picks the worker of an event: its conversation's (the legs
// linked to the one that began it), so that the events of one leg, and of
// the legs dialed for it, are handled in the order they happened: "B
// answered" before "A holds", or A's hold would find B still ringing and
// B would get no music. Events of no leg (registrations) go by account.
// What one phone's legs in other conversations owe each other ("John
// holds" before "John dials *70") is the sequencer's job (order.go).
func orderKey(e *events.Event) string {
	if e.Linked != "" {
		return e.Linked
	}
	if e.Call != "" {
		return e.Call
	}
	return accountKey(e)
}

// HandleEvent acts on one event, synchronously. Run calls it from the
// workers; unit tests call it directly.
func (c *Control) HandleEvent(ctx context.Context, e *events.Event) {
	if e == nil || e.Source == events.SourceApp {
		return
	}
	c.metrics.events.WithLabelValues(e.Type).Inc()
	if !e.Time.IsZero() {
		c.metrics.eventWait.Observe(c.now().Sub(e.Time).Seconds())
	}
	if c.handleDialEvent(ctx, e) {
		return
	}
	if handle := coreEventHandlers[e.Type]; handle != nil {
		handle(c, ctx, e)
	}
}

// coreEventHandlers are the core events control acts on; any other type
// (call.dtmf, say) is only counted.
var coreEventHandlers = map[string]func(*Control, context.Context, *events.Event){
	events.CallStarted:         (*Control).onStarted,
	events.CallRinging:         (*Control).onRinging,
	events.CallAnswered:        (*Control).onAnswered,
	events.CallHeld:            (*Control).onHeld,
	events.CallResumed:         (*Control).onResumed,
	events.CallTransfer:        (*Control).onTransfer,
	events.CallDialFailed:      (*Control).onDialFailed,
	events.CallEnded:           (*Control).onEnded,
	events.RegistrationUpdated: (*Control).onRegistration,
}

// customer returns the customer of e in the dialplan in force, or nil.
func (c *Control) customer(name string) *dialplans.Customer {
	set := c.dialplans()
	if set == nil {
		return nil
	}
	return set.Customer(name)
}

// randomNumber draws a free random park number for customer.
func (c *Control) randomNumber(customer string, digits int) (string, error) {
	c.randMu.Lock()
	defer c.randMu.Unlock()
	return c.store.RandomNumber(customer, digits, c.rand)
}
