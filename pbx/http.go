package pbx

// The process's HTTP listeners: metrics and profiles, and the web console.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/console"
	"github.com/callpark/callpark/core/ban"
	"github.com/callpark/callpark/events"
)

// serveMetrics serves /metrics and, for operators, /debug/pprof on
// cfg.MetricsAddr (by default a loopback address).
func (p *PBX) serveMetrics(ctx context.Context, g *errgroup.Group) error {
	cfg := p.cfg
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	p.metricsAddr.Store(ln.Addr().String())
	gatherer := cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	serveHTTP(ctx, g, ln, &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, nil)
	return nil
}

// serveConsole starts the web console on cfg.WebAddr.
func (p *PBX) serveConsole(ctx context.Context, g *errgroup.Group, ctl *control.Control, bus *events.Bus) error {
	cfg := p.cfg
	bc := cfg.Bans
	bc.Log = cfg.Log.With("component", "console-ban")
	var bans *ban.List
	if bc.Failures >= 0 {
		bans = ban.New(bc)
	}
	con, err := console.New(console.Config{
		Control:   ctl,
		Dialplans: p.store.Current,
		Follow: func(customer string, after uint64, fn func(uint64, *events.Event)) (func(), uint64, error) {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return bus.FollowEvents(fctx, events.CustomerEvents(customer), after, fn)
		},
		Log:       cfg.Log.With("component", "console"),
		Bans:      bans,
		Elsewhere: p.consoleElsewhere(ctl),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.WebAddr)
	if err != nil {
		return fmt.Errorf("console listen: %w", err)
	}
	scheme := "http"
	if cfg.WebTLS {
		ln, scheme = tls.NewListener(ln, p.cert.config()), "https"
	}
	p.console = con
	p.web.Store(scheme + "://" + ln.Addr().String())
	// No WriteTimeout: the event streams are long-lived (each write has
	// its own deadline).
	serveHTTP(ctx, g, ln, &http.Server{Handler: con, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}, con.Close)
	cfg.Log.Info("web console running", "url", p.WebURL())
	return nil
}

// serveHTTP serves hs on ln in g until ctx ends; then beforeShutdown (if
// any) runs and hs shuts down, given 2 s for requests in flight.
func serveHTTP(ctx context.Context, g *errgroup.Group, ln net.Listener, hs *http.Server, beforeShutdown func()) {
	g.Go(func() error {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		if beforeShutdown != nil {
			beforeShutdown()
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
}
