package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/core/presence"
	"github.com/callpark/callpark/core/rawudp"
	"github.com/callpark/callpark/core/registrar"
	"github.com/callpark/callpark/core/rtp"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/deadline"
	"github.com/callpark/callpark/internal/gopool"
	"github.com/callpark/callpark/internal/throttle"
	"github.com/callpark/callpark/internal/tick"
	"github.com/callpark/callpark/sounds"
)

// Core is the running media core.
type Core struct {
	cfg Config
	log *slog.Logger
	// noisy is for what outsiders can trigger: rate-limited, values cut.
	noisy  *slog.Logger
	ua     *sipgo.UserAgent
	client *sipgo.Client
	// clients send requests over TCP and TLS (client is UDP's, bound to
	// the SIP port); contacts are our Contact per transport.
	clients  map[string]*sipgo.Client
	contacts map[string]*sip.ContactHeader
	srv      *sipgo.Server
	// goroutines runs a call's background work (a dial, the wait for an
	// ACK, a NOTIFY) on goroutines that already have the stack for it.
	goroutines *gopool.Pool
	// media runs the legs' RTP (package rtp).
	media *rtp.Engine
	// decisions holds the deadline of every new inbound call the control
	// plane has not acted on yet (admission.go).
	decisions *deadline.Scheduler
	// strangers are the TCP and TLS connections no request has yet
	// authenticated over (strangers.go).
	strangers *strangers
	reg       *registrar.Registrar
	blf       *presence.Server
	sounds    *sounds.Library
	hubs      *audio.Hubs
	// music is the raw socket music batches leave through (nil: none,
	// packets go through each leg's socket; musicbatch.go).
	music   *rawudp.Conn
	metrics *metrics
	// sipUDP is the SIP UDP socket, with the queue wait of what it read
	// (sipqueue.go); nil until Run listens.
	sipUDP atomic.Pointer[timedConn]

	hubsCtx    context.Context
	hubsCancel context.CancelFunc

	ready chan struct{}
	// epoch is unique to this run (events.Announcement).
	epoch   string
	started time.Time
	// draining refuses new calls (lame duck).
	draining atomic.Bool
	// crashed: stop as a dying node would, saying nothing (Crash).
	crashed atomic.Bool

	mu       sync.Mutex
	channels map[string]*channel // by id
	byCallID map[string]*channel // by SIP Call-ID
	// peakLegs is the most legs held since channels was made (forget).
	peakLegs int
	// undecided counts inbound legs the control plane has not acted on.
	undecided int
	// undecidedQ holds them oldest first (decided ones are dropped lazily).
	undecidedQ []*channel
	// admitted: the Call-IDs of new INVITEs admitted a moment ago.
	admitted *admitted
	// probing holds the contacts being probed (keepalive.go).
	probing map[string]bool
}

// identity is who sent a new INVITE.
type identity struct {
	customer, account, trunk string
	// internal is the kind of an internal leg from another node (cluster.go).
	internal string
}

// New builds a core; Run starts it.
func New(cfg Config) (*Core, error) {
	if cfg.Directory == nil || cfg.Sounds == nil || cfg.Publish == nil {
		return nil, errors.New("core: Directory, Sounds and Publish are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "callpark"
	}
	if cfg.Node == "" {
		cfg.Node = "n1"
	}
	if !events.ValidNode(cfg.Node) {
		return nil, fmt.Errorf("core: invalid node name %q (lower-case letters, digits, '-')", cfg.Node)
	}
	if len(cfg.ClusterSecret) == 0 {
		cfg.ClusterSecret = []byte(uuid.NewString())
	}
	if cfg.Peers == nil {
		cfg.Peers = func(string) (string, bool) { return "", false }
	}
	cfg.Admission.defaults(cfg.Log)
	noisy := slog.New(throttle.New(cfg.Log.Handler(), throttle.Options{}))
	c := &Core{
		cfg:        cfg,
		log:        cfg.Log,
		noisy:      noisy,
		probing:    map[string]bool{},
		goroutines: gopool.New(0),
		sounds:     cfg.Sounds,
		channels:   map[string]*channel{},
		byCallID:   map[string]*channel{},
		clients:    map[string]*sipgo.Client{},
		contacts:   map[string]*sip.ContactHeader{},
		decisions:  deadline.NewScheduler(),
		admitted:   newAdmitted(admittedTTL, admittedMax),
		ready:      make(chan struct{}),
		epoch:      uuid.NewString(),
		started:    time.Now().UTC(),
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	var banned, trusted func(netip.Addr) bool
	if cfg.Bans != nil {
		banned, trusted = cfg.Bans.Banned, cfg.Bans.Trusted
	}
	c.strangers = newStrangers(cfg.Strangers, banned, trusted, m.refusedConns)
	c.hubsCtx, c.hubsCancel = context.WithCancel(context.Background())
	hubOpts := audio.HubOptions{Shards: cfg.MusicShards, Realtime: cfg.MediaPriority}
	if hubOpts.Shards <= 0 {
		hubOpts.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.MusicBatch {
		// One socket per shard, each shard flushing its own batch.
		if raw, err := rawudp.Open(hubOpts.Shards); err != nil {
			cfg.Log.Info("music goes out through each leg's own socket (no batched sends)", "err", err)
		} else {
			c.music = raw
			hubOpts.NewShard = c.newMusicBatch
		}
	}
	c.hubs = audio.NewHubsWith(c.hubsCtx, cfg.Sounds.Music, cfg.Log, hubOpts)

	ua, err := sipgo.NewUA(sipgo.WithUserAgent(cfg.UserAgent), sipgo.WithUserAgentHostname(cfg.Host),
		// sipgo's transport layer logs unparsable packets with their raw
		// bytes: it gets the throttled logger (passed, never through
		// sip.SetDefaultLogger, a library global).
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(c.readFilter),
			sip.WithTransportLayerLogger(noisy.With("component", "sip")),
			sip.WithTransportLayerWriteTimeout(streamWriteTimeout)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(noisy.With("component", "sip")),
			sip.WithTransactionLayerUnhandledResponseHandler(c.strayResponse),
			// Each message is handled on one of the goroutines that wait
			// for the core's own work (internal/gopool).
			sip.WithTransactionLayerGo(c.goroutines.Go)))
	if err != nil {
		return nil, err
	}
	c.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(noisy.With("component", "sipgo")))
	if err != nil {
		return nil, err
	}
	c.srv = srv
	// Every request goes through dispatch (dispatch.go), not through the
	// server's handler map: a new INVITE's transaction outlives its
	// handler, which the server's own dispatch would end.
	ua.TransactionLayer().OnRequest(c.dispatch)
	c.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.Host), sipgo.WithClientConnectionAddr(c.Addr()),
		sipgo.WithClientNAT(), sipgo.WithClientLogger(noisy.With("component", "sipgo")))
	if err != nil {
		return nil, err
	}
	c.clients["udp"] = c.client
	for _, tr := range []string{"tcp", "tls"} {
		cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.Host), sipgo.WithClientNAT(),
			sipgo.WithClientLogger(noisy.With("component", "sipgo")))
		if err != nil {
			return nil, err
		}
		c.clients[tr] = cl
	}
	for _, tr := range []string{"udp", "tcp", "tls"} {
		port := cfg.Port
		if tr == "tls" {
			port = cfg.TLSPort
		}
		// sip: with a transport parameter, also for TLS (RFC 5630 3.3):
		// phones such as baresip 1.0 cannot route to a sips: Contact.
		c.contacts[tr] = &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: cfg.Host, Port: port,
			UriParams: sip.HeaderParams{{K: "transport", V: tr}}}}
	}
	host, err := netip.ParseAddr(strings.Trim(cfg.Host, "[]"))
	if err != nil {
		return nil, fmt.Errorf("core: host %q is not an IP address", cfg.Host)
	}
	if c.media, err = rtp.New(rtp.Config{Host: host, Pollers: cfg.MediaPollers, Log: cfg.Log.With("component", "rtp")}); err != nil {
		return nil, err
	}

	ropts := cfg.Registrar
	ropts.Log = cfg.Log.With("component", "registrar")
	ropts.OnChange = c.onRegistration
	ropts.OnAuthFailure = func(reason string) { c.metrics.authFailures.WithLabelValues(reason).Inc() }
	ropts.OnAuthenticated = c.strangers.trust
	if cfg.Bans != nil {
		ropts.Limiter = cfg.Bans
	}
	ropts.LocalAddrs = append(ropts.LocalAddrs, c.Addr())
	if cfg.TLS != nil {
		ropts.LocalAddrs = append(ropts.LocalAddrs, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.TLSPort)))
	}
	if ropts.Algorithms == nil {
		ropts.Algorithms = func(realm string) []string { return cfg.Directory.DigestAlgorithms(realm) }
	}
	c.reg = registrar.New(func() registrar.Directory { return cfg.Directory }, ropts)
	if c.blf, err = c.newPresence(); err != nil {
		return nil, err
	}

	if err := watchDialogs(cfg.Registerer, c); err != nil {
		return nil, err
	}
	if err := watchMusic(cfg.Registerer, c.hubs); err != nil {
		return nil, err
	}
	if err := watchMedia(cfg.Registerer, c.media); err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is the SIP listen address.
func (c *Core) Addr() string { return net.JoinHostPort(c.cfg.Host, strconv.Itoa(c.cfg.Port)) }

// Registrar exposes the registrar (bindings, metrics).
func (c *Core) Registrar() *registrar.Registrar { return c.reg }

// Run serves SIP and the registrar until ctx ends. The command handler is
// served separately (HandleCommand), so the core can run without NATS in
// tests of its own.
func (c *Core) Run(ctx context.Context) error {
	defer c.hubsCancel()
	if c.music != nil {
		defer c.music.Close()
	}
	ls, err := c.listen()
	close(c.ready)
	if err != nil {
		return err
	}
	var stopping atomic.Bool
	mediaCtx, stopMedia := context.WithCancel(context.Background())
	defer stopMedia()
	g, ctx := errgroup.WithContext(ctx)
	for _, l := range ls {
		g.Go(func() error {
			if err := l.serve(); err != nil && !stopping.Load() {
				return fmt.Errorf("sip %s: %w", l.name, err)
			}
			return nil
		})
	}
	// Nothing sends before sipgo has the UDP listener (a trunk REGISTER
	// at start failed with "address already in use").
	if tc := c.sipUDP.Load(); tc != nil {
		select {
		case <-tc.reading:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
	g.Go(func() error { return c.media.Run(mediaCtx) })
	g.Go(func() error { c.decisions.Run(ctx, c.decisionTimeout); return nil })
	g.Go(func() error { c.strangers.run(ctx); return nil })
	g.Go(func() error {
		tick.Every(ctx, admittedTTL, func() { c.admitted.expire(time.Now()) })
		return nil
	})
	g.Go(func() error { c.announce(ctx); return nil })
	g.Go(func() error { return c.reg.Run(ctx) })
	g.Go(func() error { c.registerTrunks(ctx); return nil })
	g.Go(func() error { return c.blf.Run(ctx) })
	g.Go(func() error { return c.keepAlive(ctx, c.cfg.KeepAlive) })
	g.Go(func() error { return c.dialogKeepAlive(ctx, c.cfg.DialogKeepAlive) })
	g.Go(func() error {
		<-ctx.Done()
		// Goodbyes first, while the listeners still carry them; then the
		// listeners and the media close.
		if !c.crashed.Load() {
			c.hangupAll()
		}
		stopping.Store(true)
		for _, l := range ls {
			_ = l.close()
		}
		stopMedia()
		return nil
	})
	return g.Wait()
}

// Crash makes the coming stop (Run's ctx ending) that of a node that dies:
// no BYE to any leg and no goodbye to the cluster. For tests of node loss.
func (c *Core) Crash() { c.crashed.Store(true) }

// Ready is closed once the SIP listeners are bound (or failed to).
func (c *Core) Ready() <-chan struct{} { return c.ready }

// Drain puts the core in lame-duck mode: new INVITEs get 503, calls in
// progress (parked ones included) go on.
func (c *Core) Drain() { c.draining.Store(true) }

// clientFor is the client that sends requests over transport.
func (c *Core) clientFor(transport string) *sipgo.Client {
	if cl := c.clients[strings.ToLower(transport)]; cl != nil {
		return cl
	}
	return c.client
}

// contact is our Contact header for transport.
func (c *Core) contact(transport string) sip.Header {
	h := c.contacts[strings.ToLower(transport)]
	if h == nil {
		h = c.contacts["udp"]
	}
	return h.Clone()
}

// Calls is the number of live legs.
func (c *Core) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.channels)
}

// allChannels is every live leg.
func (c *Core) allChannels() []*channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := make([]*channel, 0, len(c.channels))
	for _, ch := range c.channels {
		all = append(all, ch)
	}
	return all
}

func (c *Core) hangupAll() {
	all := c.allChannels()
	var wg sync.WaitGroup
	for _, ch := range all {
		wg.Go(func() { ch.hangup(sip.StatusServiceUnavailable, "Shutting down") })
	}
	wg.Wait()
}

// Node is the core's node name.
func (c *Core) Node() string { return c.cfg.Node }

func (c *Core) publish(e *events.Event) {
	if e.Customer == "" {
		return
	}
	e.Node = c.cfg.Node
	e.Source = events.SourceCore
	c.cfg.Publish(e)
}

func (c *Core) newID() string { return events.LegID(c.cfg.Node, uuid.NewString()) }

// legsKeep is the most legs whose maps are kept once the last leg is
// gone: a Go map keeps the room of its largest size, and a minute after
// 2,000 park+retrieve cycles/s offered these two held 16 tables of 27 KB
// (0.4 MiB; a heap dump); fresh ones give that back.
const legsKeep = 1024

func (c *Core) register(ch *channel) {
	c.mu.Lock()
	c.channels[ch.id] = ch
	if ch.callID != "" {
		c.byCallID[ch.callID] = ch
	}
	c.peakLegs = max(c.peakLegs, len(c.channels))
	c.mu.Unlock()
	c.metrics.activeCalls.Inc()
}

func (c *Core) forget(ch *channel) {
	c.mu.Lock()
	if c.channels[ch.id] == ch {
		delete(c.channels, ch.id)
	}
	if ch.callID != "" && c.byCallID[ch.callID] == ch {
		delete(c.byCallID, ch.callID)
	}
	if len(c.channels) == 0 && len(c.byCallID) == 0 && c.peakLegs > legsKeep {
		c.channels, c.byCallID, c.peakLegs = map[string]*channel{}, map[string]*channel{}, 0
	}
	c.mu.Unlock()
}

func (c *Core) channel(id string) *channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.channels[id]
}

func (c *Core) channelByCallID(callID string) *channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byCallID[callID]
}

func (c *Core) onRegistration(customer, account string, bs []registrar.Binding) {
	c.metrics.registrations.Set(float64(c.reg.Count()))
	e := &events.Event{Type: events.RegistrationUpdated, Customer: customer, Call: "registrar", Account: account}
	for _, b := range bs {
		e.Contacts = append(e.Contacts, events.Contact{URI: b.Contact.String(), Source: b.Source, Expires: b.Expires})
	}
	c.publish(e)
}
