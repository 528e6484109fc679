package pbx

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/api"
	"github.com/callpark/callpark/control/console"
	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/core/ban"
	"github.com/callpark/callpark/core/presence"
	"github.com/callpark/callpark/core/registrar"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/memtrim"
	"github.com/callpark/callpark/internal/metric"
	"github.com/callpark/callpark/sounds"
)

// PBX is one running callpark process.
type PBX struct {
	cfg     Config
	nats    *events.Server
	bus     *events.Bus
	store   *dialplans.Store
	core    *core.Core
	control *control.Control
	console *console.Server
	nodes   *events.Nodes
	// cert is the TLS certificate (nil: no TLS), tls.go.
	cert *certificate
	// web is the console's URL once it listens, for the announcements.
	web atomic.Value
	// metricsAddr is where /metrics listens ("" if off).
	metricsAddr atomic.Value
	ready       chan struct{}
}

// New builds the parts. Nothing listens until Run.
func New(cfg Config) (*PBX, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &PBX{cfg: cfg, ready: make(chan struct{})}
	store, err := dialplans.NewStore(cfg.Dialplans, cfg.Log.With("component", "dialplans"))
	if err != nil {
		return nil, err
	}
	p.store = store
	if cfg.TLSCertFile != "" {
		if p.cert, err = loadCertificate(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Store is the live dialplan store.
func (p *PBX) Store() *dialplans.Store { return p.store }

// Core is the media core (nil in the control role).
func (p *PBX) Core() *core.Core { return p.core }

// Control is the control plane (nil in the core role).
func (p *PBX) Control() *control.Control { return p.control }

// Console is the web console (nil unless Config.WebAddr), once Ready.
func (p *PBX) Console() *console.Server { return p.console }

// WebURL is the console's base URL ("" if off), once Ready.
func (p *PBX) WebURL() string {
	u, _ := p.web.Load().(string)
	return u
}

// MetricsAddr is the address /metrics and /debug/pprof listen on ("" if
// off), once Ready: the port chosen when Config.MetricsAddr asks for 0.
func (p *PBX) MetricsAddr() string {
	a, _ := p.metricsAddr.Load().(string)
	return a
}

// Bus is the NATS connection, once Ready.
func (p *PBX) Bus() *events.Bus { return p.bus }

// NATSURL is the NATS server in use, once Ready.
func (p *PBX) NATSURL() string {
	if p.cfg.NATSURL != "" {
		return p.cfg.NATSURL
	}
	if p.nats != nil {
		return p.nats.ClientURL()
	}
	return ""
}

// Ready is closed once every listener is up and the control plane (if it
// runs here) handles events.
func (p *PBX) Ready() <-chan struct{} { return p.ready }

// Run starts everything and blocks until ctx ends; then it shuts down in
// order. Lame duck (Drain) is the caller's first step on SIGTERM.
func (p *PBX) Run(ctx context.Context) (err error) {
	cfg := p.cfg
	log := cfg.Log
	url := cfg.NATSURL
	if url == "" {
		if err := p.natsSecret(); err != nil {
			return err
		}
		users := func(set *dialplans.Set) []*server.User { return api.Users(set, p.cfg.NATSUser, p.cfg.NATSPassword) }
		sc := events.ServerConfig{Host: cfg.NATSHost, Port: cfg.NATSPort, JetStream: true,
			StoreDir: cfg.NATSStoreDir, Users: users(p.store.Current()), Name: cfg.Node}
		if cl := cfg.Cluster; cl != nil && cl.Port != 0 {
			sc.Cluster = &events.ClusterConfig{Name: cl.Name, Port: cl.Port, Routes: cl.Routes}
		}
		ns, err := events.RunServer(sc)
		if err != nil {
			return err
		}
		p.nats = ns
		defer ns.Shutdown()
		url = ns.ClientURL()
		// Customers come and go, and tokens change, with the dialplans.
		p.store.OnChange(func(set *dialplans.Set) {
			if err := ns.SetUsers(users(set)); err != nil {
				log.Error("NATS users not updated", "err", err)
			}
		})
		log.Info("embedded NATS server (credentials required)", "url", url, "user", p.cfg.NATSUser)
	}
	var natsOpts []nats.Option
	if p.cfg.NATSPassword != "" {
		natsOpts = append(natsOpts, nats.UserInfo(p.cfg.NATSUser, p.cfg.NATSPassword))
	}
	if p.nats != nil {
		// The embedded server is in this process: no socket between them.
		natsOpts = append(natsOpts, nats.InProcessServer(p.nats.Server))
	}
	bus, err := events.Connect(url, "callparkd-"+cfg.Role, log.With("component", "bus"), natsOpts...)
	if err != nil {
		return err
	}
	p.bus = bus
	defer bus.Close()
	bus.DefaultNode = cfg.Node
	// Every core announces itself; the table of live nodes serves the
	// core (where other nodes are) and the control plane (who is gone).
	nodes := events.NewNodes()
	p.nodes = nodes
	if _, err := bus.SubscribeAnnouncements(nodes.Observe); err != nil {
		return err
	}
	series := metric.NewSet(cfg.Registerer)
	series.Runtime()
	bus.OnPublishError = series.Counter("callpark_event_publish_errors_total", "Events that could not be published to NATS.").Inc
	if err := series.Err(); err != nil {
		return err
	}
	// Core and control in one process talk directly (events.Local); NATS
	// carries the rest.
	var local *events.Local
	if cfg.Role == RoleAll {
		local = &events.Local{Bus: bus, Node: cfg.Node, Cluster: cfg.Cluster != nil}
	}
	if cfg.Role != RoleCore {
		err := jetStreamRetry(ctx, cfg.Cluster != nil, func(sctx context.Context) error {
			return bus.EnsureStream(sctx, cfg.EventRetention)
		})
		if err != nil {
			log.Warn("no JetStream event stream (events still flow live)", "err", err)
		}
	}
	var locations *control.LocationsKV
	if cl := cfg.Cluster; cl != nil {
		err := jetStreamRetry(ctx, true, func(sctx context.Context) (err error) {
			locations, err = control.NewLocationsKV(sctx, bus.Conn(), cl.Replicas)
			return err
		})
		if err != nil {
			return err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(runCtx)
	if local != nil {
		g.Go(func() error { return local.Run(ctx) })
	}
	waited := false
	defer func() {
		if waited {
			return
		}
		// A step below failed with parts already running: stop them, and
		// report the first of them that failed if one did (a SIP port
		// taken, say): the step then only saw the group's cancellation.
		cancel()
		if werr := g.Wait(); werr != nil && !errors.Is(werr, context.Canceled) {
			err = werr
		}
	}()
	g.Go(func() error { p.store.Watch(ctx, cfg.ReloadInterval); return nil })
	g.Go(func() error { nodes.Run(ctx); return nil })
	if cfg.MemTrim > 0 {
		trim := memtrim.New(cfg.MemTrim)
		trim.OnTrim = func() { log.Debug("memory returned to the OS after a busy spell") }
		g.Go(func() error { trim.Run(ctx); return nil })
	}

	if cfg.Role != RoleControl {
		lib, err := sounds.Load(log.With("component", "sounds"))
		if err != nil {
			return err
		}
		loadMusic := func(set *dialplans.Set) {
			for _, c := range set.Customers() {
				if dir := c.Features.Music; dir != "" {
					if _, ok := lib.Music(dir); ok {
						continue
					}
					if err := lib.LoadMusicDir(dir, dir); err != nil {
						log.Error("customer music not loaded", "customer", c.Name, "dir", dir, "err", err)
					}
				}
			}
		}
		loadMusic(p.store.Current())
		// A reload that names a new music directory loads it.
		p.store.OnChange(loadMusic)
		var bans *ban.List
		if cfg.Bans.Failures >= 0 {
			bc := cfg.Bans
			bc.Log = log.With("component", "ban")
			banned := series.Counters("callpark_bans_total", "Addresses banned and accounts locked after repeated authentication failures.", "kind")
			bc.OnBan = func(_ netip.Addr, account string, _ time.Time) {
				if account == "" {
					banned.WithLabelValues("address").Inc()
				} else {
					banned.WithLabelValues("account").Inc()
				}
			}
			bans = ban.New(bc)
		}
		if err := series.Err(); err != nil {
			return err
		}
		c, err := core.New(core.Config{
			Admission: core.Admission{MaxLegs: cfg.MaxLegs, DecisionTimeout: cfg.DecisionTimeout,
				MaxDecisionDelay: cfg.MaxDecisionDelay, MaxQueueDelay: cfg.MaxQueueDelay, MaxActiveLegs: cfg.MaxActiveLegs, Connected: bus.Connected},
			KeepAlive:       cfg.KeepAlive,
			DialogKeepAlive: cfg.DialogKeepAlive,
			MusicBatch:      !cfg.PlainMusic,
			MusicShards:     cfg.MusicShards,
			MediaPriority:   cfg.MediaPriority,
			MediaPollers:    cfg.MediaPollers,
			Bans:            bans,
			Strangers:       cfg.SIPStrangers,
			Host:            cfg.SIPHost,
			Port:            cfg.SIPPort,
			TCP:             cfg.SIPTCP,
			TLS:             p.sipTLS(),
			TLSPort:         cfg.SIPTLSPort,
			Directory:       directory{p.store.Current},
			Node:            cfg.Node,
			Announce:        p.announce,
			Peers:           nodes.Addr,
			ClusterSecret:   clusterSecret(cfg.Cluster),
			Sounds:          lib,
			Publish:         publishVia(bus, local, locations, log),
			Log:             log.With("component", "core"),
			Registerer:      cfg.Registerer,
			Registrar:       registrar.Options{MinExpires: cfg.RegistrarMinExpires},
			Presence:        presence.Config{MinExpires: cfg.SubscribeMinExpires, NotifyTimeout: cfg.SubscribeNotifyTimeout},
			Testing:         cfg.CoreTesting,
		})
		if err != nil {
			return err
		}
		p.core = c
		if local != nil {
			local.Core = c.HandleCommand
		}
		g.Go(func() error { return c.Run(ctx) })
		g.Go(func() error { return bus.ServeCommands(ctx, cfg.Node, c.HandleCommand) })
	}
	if cfg.Role != RoleCore {
		var persist control.ParkedStore
		var cluster *control.Cluster
		if cfg.Role == RoleControl || cfg.Cluster != nil {
			// Apart from the core, or in a cluster, parked calls outlive
			// this process: keep them (and their automatic-return
			// deadlines) in JetStream.
			replicas := 1
			if cfg.Cluster != nil {
				replicas = cfg.Cluster.Replicas
			}
			var kv *control.ParkedKV
			err := jetStreamRetry(ctx, cfg.Cluster != nil, func(sctx context.Context) (err error) {
				kv, err = control.NewParkedKV(sctx, bus.Conn(), replicas)
				return err
			})
			switch {
			case err == nil:
				persist = kv
			case cfg.Cluster != nil:
				return err
			default:
				log.Warn("parked calls will not survive a restart", "err", err)
			}
		}
		if cl := cfg.Cluster; cl != nil {
			var leases *control.LeasesKV
			err := jetStreamRetry(ctx, true, func(sctx context.Context) (err error) {
				leases, err = control.NewLeasesKV(sctx, bus.Conn(), cl.Replicas)
				return err
			})
			if err != nil {
				return err
			}
			cluster = &control.Cluster{Node: cfg.Node, Leases: leases, Locations: locations, Partitions: cl.Partitions}
		}
		var ctlBus control.Bus = bus
		if local != nil {
			ctlBus = local
		}
		ctl, err := control.New(control.Config{
			Bus:        ctlBus,
			Dialplans:  p.store.Current,
			Log:        log.With("component", "control"),
			Registerer: cfg.Registerer,
			Persist:    persist,
			ShedAfter:  cfg.ShedAfter,
			Nodes:      nodes,
			Cluster:    cluster,
		})
		if err != nil {
			return err
		}
		p.control = ctl
		g.Go(func() error { return ctl.Run(ctx) })
		apiCfg := api.Config{
			Conn:      bus.Conn(),
			Control:   ctl,
			Dialplans: p.store.Current,
			Log:       log.With("component", "api"),
		}
		if cluster != nil {
			apiCfg.Node, apiCfg.Owner = cfg.Node, ctl.Owner
		}
		apiSvc, err := api.Start(apiCfg)
		if err != nil {
			return err
		}
		g.Go(func() error { <-ctx.Done(); return apiSvc.Stop() })
		if cfg.WebAddr != "" {
			if err := p.serveConsole(ctx, g, ctl, bus); err != nil {
				return err
			}
		}
	}
	if cfg.MetricsAddr != "" {
		if err := p.serveMetrics(ctx, g); err != nil {
			return err
		}
	}
	// The SIP listeners bind inside core.Run; wait until they answer
	// before saying ready.
	go func() {
		if p.core != nil {
			select {
			case <-p.core.Ready():
			case <-ctx.Done():
			}
		}
		if p.control != nil {
			select {
			case <-p.control.Ready():
			case <-ctx.Done():
			}
		}
		close(p.ready)
	}()
	log.Info("callpark running", "role", cfg.Role, "sip", net.JoinHostPort(cfg.SIPHost, fmt.Sprint(cfg.SIPPort)), "nats", url)
	waited = true
	return g.Wait()
}

// sipTLS is the SIP listener's TLS config (nil: no TLS listener).
func (p *PBX) sipTLS() *tls.Config {
	if p.cert == nil {
		return nil
	}
	return p.cert.config()
}

// NATSCredentials are the user and password the callpark processes use
// with the embedded server (see Config.NATSUser).
func (p *PBX) NATSCredentials() (user, password string) { return p.cfg.NATSUser, p.cfg.NATSPassword }

// natsSecret settles the password of the processes' own NATS user.
func (p *PBX) natsSecret() error {
	if p.cfg.NATSPassword != "" {
		return nil
	}
	if f := p.cfg.NATSSecretFile; f != "" {
		b, err := os.ReadFile(f)
		switch {
		case err == nil && len(strings.TrimSpace(string(b))) > 0:
			p.cfg.NATSPassword = strings.TrimSpace(string(b))
			return nil
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("nats secret file: %w", err)
		}
		p.cfg.NATSPassword = rand.Text()
		if err := os.WriteFile(f, []byte(p.cfg.NATSPassword+"\n"), 0o600); err != nil {
			return fmt.Errorf("nats secret file: %w", err)
		}
		return nil
	}
	p.cfg.NATSPassword = rand.Text()
	return nil
}

// Drain starts lame duck: new calls get 503 and Run's caller waits until
// live calls end or the deadline passes.
func (p *PBX) Drain(ctx context.Context) {
	if p.core == nil {
		return
	}
	p.core.Drain()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for p.core.Calls() > 0 {
		p.cfg.Log.Info("draining", "legs", p.core.Calls())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
