package pbxtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx"
)

// PBX is a running callpark under test.
type PBX struct {
	*pbx.PBX
	Addr string // SIP host:port
	// TLSAddr is the SIP over TLS host:port (WithTLS), else "".
	TLSAddr  string
	Registry *prometheus.Registry
	Events   *Recorder
	Config   pbx.Config

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	t        testing.TB // the test it was started for
}

// ServiceAuth is the NATS option that connects as the callpark processes'
// own user (the embedded server admits nobody anonymous).
func (p *PBX) ServiceAuth() nats.Option {
	user, pass := p.NATSCredentials()
	return nats.UserInfo(user, pass)
}

// WithServiceAuth connects a control- or core-only PBX to another one's
// embedded NATS with that one's service credentials.
func WithServiceAuth(of *PBX) Option {
	return func(c *pbx.Config) { c.NATSUser, c.NATSPassword = of.NATSCredentials() }
}

// Option changes the test PBX's config.
type Option func(*pbx.Config)

// WithDialplans uses another dialplan directory (default: dialplans/sample).
func WithDialplans(dir string) Option { return func(c *pbx.Config) { c.Dialplans = dir } }

// WithRole runs only the core or only the control plane.
func WithRole(role string) Option { return func(c *pbx.Config) { c.Role = role } }

// WithNATS uses an external NATS server instead of an embedded one.
func WithNATS(url string) Option { return func(c *pbx.Config) { c.NATSURL = url } }

// WithMetrics serves /metrics on addr.
func WithMetrics(addr string) Option { return func(c *pbx.Config) { c.MetricsAddr = addr } }

// WithTLS serves SIP over TLS (and SRTP) on a free port with a fresh
// self-signed certificate for 127.0.0.1 and ::1 (PBX.TLSAddr; PhoneTLS).
func WithTLS(t testing.TB) Option {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "callpark.crt"), filepath.Join(dir, "callpark.key")
	if err := pbx.WriteTestCertificate(certFile, keyFile, "127.0.0.1", "::1", "localhost"); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	return func(c *pbx.Config) { c.TLSCertFile, c.TLSKeyFile, c.SIPTLSPort = certFile, keyFile, port }
}

// clientTLS is what a phone of this PBX uses over TLS: it trusts the
// PBX's test certificate (and nothing else) and serves it on its own
// listener.
func (p *PBX) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(p.Config.TLSCertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("test certificate: no PEM certificate")
	}
	cert, err := tls.LoadX509KeyPair(p.Config.TLSCertFile, p.Config.TLSKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// WithConsole serves the web console on a free loopback port (PBX.WebURL).
func WithConsole() Option { return func(c *pbx.Config) { c.WebAddr = "127.0.0.1:0" } }

// SampleDialplans is the path of the repository's sample dialplans.
func SampleDialplans() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "dialplans", "sample")
}

// handedOut is every port FreePort has returned in this process: a port
// checked free but not yet bound by its test must not go to another test
// running in parallel (a cluster start picks nine, and a node whose SIP
// or NATS port went to someone else meanwhile fails to start).
var handedOut sync.Map // int -> struct{}

// FreePort returns a port free for both UDP and TCP on 127.0.0.1, picked
// at random below Linux's ephemeral range (32768-60999) so that RTP sockets,
// which take ephemeral ports, never grab it between the check and the bind,
// and never returned twice in one process.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(port, struct{}{}); taken {
			continue
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// Start runs a full callpark (embedded NATS, core, control) on free ports
// and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *PBX {
	t.Helper()
	tp := launch(t, Config(t, opts...))
	tp.wait(t, 15*time.Second)
	return tp
}

// Config is the config Start uses: free ports, the sample dialplans, a
// fresh registry, test timings; opts change it.
func Config(t testing.TB, opts ...Option) pbx.Config {
	reg := prometheus.NewRegistry()
	cfg := pbx.Config{
		SIPHost:             "127.0.0.1",
		SIPPort:             FreePort(t),
		SIPTCP:              true,
		NATSPort:            -1,
		NATSStoreDir:        t.TempDir(),
		Dialplans:           SampleDialplans(),
		ReloadInterval:      100 * time.Millisecond,
		RegistrarMinExpires: time.Second,
		SubscribeMinExpires: time.Second,
		// The race detector and a dozen phones on two cores can keep the
		// control plane busier than production; overload tests set it.
		DecisionTimeout:  10 * time.Second,
		MaxDecisionDelay: 3 * time.Second,
		MaxQueueDelay:    2 * time.Second,
		Log:              testLogger(t),
		Registerer:       reg,
		Gatherer:         reg,
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// launch starts a PBX with cfg (not yet waited for) and stops it when the
// test ends.
func launch(t testing.TB, cfg pbx.Config) *PBX {
	t.Helper()
	p, err := pbx.New(cfg)
	if err != nil {
		t.Fatalf("pbx: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	reg, _ := cfg.Registerer.(*prometheus.Registry)
	tp := &PBX{PBX: p, Addr: net.JoinHostPort(cfg.SIPHost, itoa(cfg.SIPPort)), Registry: reg, Config: cfg,
		cancel: cancel, done: done, t: t}
	if cfg.TLSCertFile != "" {
		tp.TLSAddr = net.JoinHostPort(cfg.SIPHost, itoa(cfg.SIPTLSPort))
	}
	t.Cleanup(func() { tp.stop(t) })
	return tp
}

// wait waits until the PBX is ready and starts recording its events.
func (tp *PBX) wait(t testing.TB, within time.Duration) {
	t.Helper()
	if err := tp.waitErr(within); err != nil {
		t.Fatal(err)
	}
}

func (tp *PBX) waitErr(within time.Duration) error {
	select {
	case <-tp.Ready():
	case err := <-tp.done:
		tp.cancel()
		return fmt.Errorf("pbx %s did not start: %v", tp.Config.Node, err)
	case <-time.After(within):
		tp.cancel()
		return fmt.Errorf("pbx %s did not start in time", tp.Config.Node)
	}
	rec, err := Record(tp.Bus(), events.AllEvents)
	if err != nil {
		return err
	}
	tp.Events = rec
	return nil
}

// stop ends the PBX (once) and waits for Run to return.
func (tp *PBX) stop(t testing.TB) {
	tp.stopOnce.Do(func() {
		tp.cancel()
		select {
		case <-tp.done:
		case <-time.After(10 * time.Second):
			t.Error("pbx did not stop in time")
		}
	})
}

// Kill stops the PBX as a node that dies: no BYE, no goodbye to the
// cluster, its embedded NATS server gone.
func (tp *PBX) Kill(t testing.TB) {
	t.Helper()
	tp.Crash()
	tp.stop(t)
}

func itoa(n int) string { return strconv.Itoa(n) }

// Counter is the value of a counter (or gauge) of the PBX's registry whose
// labels include every label given; 0 when there is none.
func (p *PBX) Counter(name string, labels map[string]string) float64 {
	mfs, err := p.Registry.Gather()
	if err != nil {
		return 0
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

// WithDialogKeepAlive sends every answered leg an in-dialog OPTIONS this
// often (off by default in tests).
func WithDialogKeepAlive(every time.Duration) Option {
	return func(c *pbx.Config) { c.DialogKeepAlive = every }
}

// WaitNoLegs waits until the core has no SIP leg left.
func (p *PBX) WaitNoLegs(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := p.Counter("callpark_core_active_legs", nil)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v SIP legs still up after %s", n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
