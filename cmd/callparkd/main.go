// Command callparkd runs the callpark call-parking PBX.
//
//	callparkd [run|core|control] [flags]   run the service (default: core and control in one process)
//	callparkd check DIR                    validate a dialplan tree, print file:line: message per error
//
// Every flag can also be set by an environment variable (CALLPARK_<FLAG>,
// upper case, dashes as underscores); the flag wins.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/core/ban"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/internal/lazylog"
	"github.com/callpark/callpark/internal/memtrim"
	"github.com/callpark/callpark/pbx"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	role := pbx.RoleAll
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "run":
		case "core":
			role = pbx.RoleCore
		case "control":
			role = pbx.RoleControl
		case "check":
			return check(args[1:], stdout, stderr)
		case "cert":
			return cert(args[1:], stdout, stderr)
		case "help":
			usage(stderr, nil)
			return 0
		default:
			fmt.Fprintf(stderr, "callparkd: unknown command %q (run, core, control, check)\n", args[0])
			return 2
		}
		args = args[1:]
	}
	fs := flag.NewFlagSet("callparkd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sip := fs.String("sip", "127.0.0.1:5060", "SIP listen address (UDP)")
	tcp := fs.Bool("tcp", true, "also listen on TCP at the same address")
	tlsPort := fs.Int("tls-port", 5061, "SIP over TLS (with SRTP) on this port of the --sip host, when --tls-cert and --tls-key are set")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain) of the TLS listener and of the HTTPS console; re-read when it changes")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	webTLS := fs.Bool("web-tls", false, "serve the console over HTTPS with --tls-cert (session cookies are then Secure)")
	natsURL := fs.String("nats", "", "external NATS server URL; empty embeds one")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "embedded NATS listen address")
	natsStore := fs.String("nats-store", "", "embedded JetStream storage directory (default: temporary)")
	dir := fs.String("dialplans", "dialplans/sample", "dialplan directory")
	metrics := fs.String("metrics", "127.0.0.1:9060", "Prometheus /metrics listen address; empty disables")
	web := fs.String("web", "127.0.0.1:9080", "receptionist web console listen address; empty disables")
	drain := fs.Duration("drain-timeout", 30*time.Second, "lame-duck limit on SIGTERM: parked and live calls may finish for this long")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	natsUser := fs.String("nats-user", "callpark", "NATS user of the callpark processes")
	natsSecret := fs.String("nats-secret-file", "", "file with that user's NATS password (embedded server: made with a random secret if missing; share it with split core/control processes)")
	maxLegs := fs.Int("max-legs", 0, "live SIP legs before new calls get 503 (0: what the open-file limit allows)")
	maxActive := fs.Int("max-active-legs", 0, "new calls (not parks or retrievals) get 503 while this many legs are up and not on music on hold (0: 1500 per core; negative: never)")
	decisionDelay := fs.Duration("max-decision-delay", 5*time.Second, "new calls get 503 while most calls waiting for the control plane have waited this long")
	queueDelay := fs.Duration("max-sip-queue-delay", 50*time.Millisecond, "new calls (not parks or retrievals) get 503 while the SIP UDP receive queue stands this long: every datagram of the last 100 ms waited longer (negative: never)")
	decisionTimeout := fs.Duration("decision-timeout", 5*time.Second, "a new call the control plane has not acted on within this gets 503")
	gcPercent := fs.Int(gcPercentFlag, defaultGCPercent, "the Go collector's GOGC: how far the heap grows past its live part before a collection. Higher spends less CPU on collection under call load and more memory (100 -> 150: 17 -> 13 % of the CPU at 1,000 park+retrieve cycles/s, 20 -> 24 KiB a parked call); the GOGC environment variable wins unless this is given")
	memTrim := fs.Duration("mem-trim", memtrim.DefaultInterval, "after this long with no garbage collection following a busy spell, return free memory to the OS at once (0: leave it to the Go runtime)")
	shedAfter := fs.Duration("shed-after", time.Second, "new extension calls get 503 while the control plane's queue lags this much (negative: never); retrievals always go on")
	keepAlive := fs.Duration("keepalive", 60*time.Second, "OPTIONS keep-alive of UDP contacts; one that does not answer is unregistered (0: off)")
	dialogKeepAlive := fs.Duration("dialog-keepalive", 60*time.Second, "in-dialog OPTIONS to each answered leg; a far end that answers 481 or nothing is hung up (0: off)")
	musicShards := fs.Int("music-shards", 0, "pacing goroutines music on hold is spread over, their ticks staggered over the 20 ms (0: one per core)")
	mediaPriority := fs.Int("media-priority", 0, "real-time priority (SCHED_RR, 1-99) of the threads that pace music on hold, like Asterisk's -p, when the process may have it (CAP_SYS_NICE): music stays on time on a full machine, at the cost of some of the call set-up rate; 0: normal priority")
	musicBatch := fs.Bool("music-batch", true, "send music on hold in batches (sendmmsg) through a raw socket when allowed (CAP_NET_RAW); false: through each leg's socket")
	tcpAuthTimeout := fs.Duration("tcp-auth-timeout", 30*time.Second, "a TCP or TLS connection no request has authenticated over within this is closed")
	tcpUnauthPerIP := fs.Int("tcp-unauth-per-ip", 32, "TCP and TLS connections one address may hold before a request over them authenticates; more are closed at once")
	trusted := fs.String("trusted", "", "comma-separated addresses or CIDRs never banned, whose TCP and TLS connections are never held to --tcp-unauth-per-ip and --tcp-auth-timeout (an office NAT, a carrier)")
	banFailures := fs.Int("ban-failures", 10, "authentication failures from one address within --ban-window that ban it (-1: never ban)")
	banWindow := fs.Duration("ban-window", time.Minute, "window of --ban-failures")
	banTime := fs.Duration("ban-time", 5*time.Minute, "how long a banned address gets no answer")
	node := fs.String("node", "n1", "this node's name (lower-case letters, digits, '-'); every node of a cluster needs its own")
	clusterListen := fs.String("cluster-listen", "", "cluster mode with embedded NATS: this server's NATS route address (host:port)")
	clusterRoutes := fs.String("cluster-routes", "", "cluster mode: comma-separated NATS routes of the other nodes (nats-route://host:port)")
	clusterSecret := fs.String("cluster-secret", "", "cluster mode: secret shared by the nodes (signs the internal legs between them); set it to run as one node of a cluster")
	clusterReplicas := fs.Int("cluster-replicas", 0, "cluster mode: copies of the JetStream KV buckets (default 3, 1 for a single NATS server)")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "callparkd: %v\n", err)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "callparkd: bad --log-level: %v\n", err)
		return 2
	}
	// Loggers made per call (With) format their attributes only for lines
	// that are written (lazylog).
	log := slog.New(lazylog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})))
	host, port, err := splitHostPort(*sip)
	if err != nil {
		fmt.Fprintf(stderr, "callparkd: bad --sip: %v\n", err)
		return 2
	}
	nhost, nport, err := splitHostPort(*natsListen)
	if err != nil {
		fmt.Fprintf(stderr, "callparkd: bad --nats-listen: %v\n", err)
		return 2
	}
	prefixes, err := parsePrefixes(*trusted)
	if err != nil {
		fmt.Fprintf(stderr, "callparkd: bad --trusted: %v\n", err)
		return 2
	}
	if *mediaPriority < 0 || *mediaPriority > 99 {
		fmt.Fprintf(stderr, "callparkd: bad --media-priority %d: 0 (none) or a real-time priority 1-99\n", *mediaPriority)
		return 2
	}
	musicShardsN, mediaPriorityN, mediaPollers := mediaThreads(role, *musicShards, *mediaPriority, log)
	setGCPercent(fs, *gcPercent, log)
	if n, err := core.RaiseFileLimit(); err != nil {
		log.Warn("open-file limit not raised", "err", err)
	} else {
		log.Info("open-file limit", "nofile", n)
	}
	cfg := pbx.Config{
		Role: role, SIPHost: host, SIPPort: port, SIPTCP: *tcp,
		MusicShards: musicShardsN, MediaPriority: mediaPriorityN, MediaPollers: mediaPollers,
		SIPTLSPort: *tlsPort, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, WebTLS: *webTLS,
		NATSURL: *natsURL, NATSHost: nhost, NATSPort: nport, NATSStoreDir: *natsStore,
		NATSUser: *natsUser, NATSSecretFile: *natsSecret,
		Dialplans: *dir, MetricsAddr: *metrics, WebAddr: *web, DrainTimeout: *drain, Log: log,
		MaxLegs: *maxLegs, MaxActiveLegs: *maxActive, KeepAlive: *keepAlive, DialogKeepAlive: *dialogKeepAlive, PlainMusic: !*musicBatch, MaxDecisionDelay: *decisionDelay, MaxQueueDelay: *queueDelay, DecisionTimeout: *decisionTimeout, ShedAfter: *shedAfter, MemTrim: *memTrim,
		Bans:         ban.Config{Failures: *banFailures, Window: *banWindow, BanFor: *banTime, Trusted: prefixes},
		SIPStrangers: core.StrangerLimits{Timeout: *tcpAuthTimeout, PerAddress: *tcpUnauthPerIP},
	}
	cfg.Node = *node
	if *clusterSecret != "" {
		cl := &pbx.Cluster{Secret: *clusterSecret, Replicas: *clusterReplicas}
		if *clusterListen != "" {
			_, cport, err := splitHostPort(*clusterListen)
			if err != nil {
				fmt.Fprintf(stderr, "callparkd: bad --cluster-listen: %v\n", err)
				return 2
			}
			cl.Port = cport
		}
		for _, r := range strings.Split(*clusterRoutes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cl.Routes = append(cl.Routes, r)
			}
		}
		cfg.Cluster = cl
	}
	p, err := pbx.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "callparkd: %v\n", err)
		return 1
	}

	// SIGTERM/SIGINT: lame duck (refuse new calls, let live and parked calls
	// finish up to the drain timeout), then stop. A second signal stops at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	reload := func() {
		if err := p.Store().Reload(); err != nil {
			log.Error("dialplan reload refused", "err", err)
		} else {
			log.Info("dialplans reloaded")
		}
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGHUP {
				reload()
				continue
			}
			log.Info("shutting down: lame duck", "signal", s.String(), "limit", cfg.DrainTimeout)
			go func() {
				dctx, dcancel := context.WithTimeout(ctx, cfg.DrainTimeout)
				p.Drain(dctx)
				dcancel()
				cancel()
			}()
			// During the lame duck SIGHUP still reloads; another
			// SIGTERM/SIGINT stops at once.
			for s2 := range sigs {
				if s2 == syscall.SIGHUP {
					reload()
					continue
				}
				log.Warn("second signal: stopping now")
				cancel()
				break
			}
		}
	}()
	if err := p.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("callparkd failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func check(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: callparkd check DIR")
		return 2
	}
	problems := dialplans.Check(args[0])
	for _, pr := range problems {
		fmt.Fprintln(stdout, pr.String())
	}
	if len(problems) > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}

// cert writes a self-signed test certificate (see the README's TLS section).
func cert(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("callparkd cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	certFile := fs.String("cert", "callpark.crt", "certificate file to write")
	keyFile := fs.String("key", "callpark.key", "key file to write")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and names the certificate is for")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := pbx.WriteTestCertificate(*certFile, *keyFile, strings.Split(*hosts, ",")...); err != nil {
		fmt.Fprintf(stderr, "callparkd cert: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s (self-signed, for %s)\n", *certFile, *keyFile, *hosts)
	return 0
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `callparkd: call-parking PBX

usage:
  callparkd [run] [flags]     core and control plane in one process (embedded NATS unless --nats)
  callparkd core [flags]      media core only
  callparkd control --nats URL [flags]
                              control plane only, against the core's NATS server
  callparkd check DIR         validate dialplan files; prints file:line: message
  callparkd cert [--hosts H]  write a self-signed test certificate (callpark.crt, callpark.key)

flags (env CALLPARK_<NAME>):
`)
	if fs != nil {
		fs.PrintDefaults()
	}
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}

// parsePrefixes reads "192.0.2.1, 198.51.100.0/24" (a bare address is a
// single-host prefix).
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// applyEnv sets every flag not given on the command line from its
// environment variable, CALLPARK_<FLAG> (upper case, dashes as
// underscores). A value the flag refuses is an error naming the variable,
// never a silent default.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := "CALLPARK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("bad %s=%q: %v", name, v, serr)
			}
		}
	})
	return err
}

// mediaThreads settles how music on hold is paced: shards (0: one per
// core) and, where the process may, a real-time priority for them
// (core.MediaPriority). Real-time shards get one P each on top of the
// cores' (GOMAXPROCS): each waits for its tick in a system call, holding
// a P meanwhile. Setting GOMAXPROCS ends the runtime's own updates of it
// from the CPU quota; the RTP pollers stay one per core.
func mediaThreads(role string, shards, prio int, log *slog.Logger) (int, int, int) {
	cores := runtime.GOMAXPROCS(0)
	if shards <= 0 {
		shards = cores
	}
	if role == pbx.RoleControl {
		return shards, 0, cores
	}
	if prio = core.MediaPriority(prio, log); prio > 0 {
		runtime.GOMAXPROCS(cores + shards)
	}
	return shards, prio, cores
}
