package pbx

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/core/ban"
	"github.com/callpark/callpark/events"
)

// Cluster is this process's part in a callpark cluster: every node runs
// core and control; NATS (its cluster and JetStream) is what they share.
type Cluster struct {
	// Name of the NATS cluster of the embedded servers (default "callpark").
	Name string
	// Port is the embedded NATS server's route port; Routes the other
	// nodes' (nats-route://host:port). Both empty with an external NATS
	// cluster (NATSURL).
	Port   int
	Routes []string
	// Secret signs the internal legs between nodes' cores; every node
	// needs the same.
	Secret string
	// Replicas of the KV buckets (default 3 in a cluster of servers, 1
	// for a single one).
	Replicas int
	// Partitions the customers are split into among the control planes
	// (default control.DefaultPartitions); every node must agree.
	Partitions int
}

// Roles a process can take.
const (
	RoleAll     = "all"     // core and control in one process
	RoleCore    = "core"    // media core only
	RoleControl = "control" // control plane only
)

// Config is everything a callpark process needs.
type Config struct {
	Role string
	// Node names this process in a cluster (events.ValidNode; default
	// "n1"). Every node needs its own: leg ids and command subjects carry it.
	Node string
	// Cluster, when set, makes this process one node of a callpark
	// cluster (see Cluster).
	Cluster *Cluster
	// SIPHost and SIPPort are the SIP listen address (UDP, and TCP if SIPTCP).
	SIPHost string
	SIPPort int
	SIPTCP  bool
	// SIPTLSPort serves SIP over TLS (with SRTP) on SIPHost when TLSCertFile
	// and TLSKeyFile are set (default 5061).
	SIPTLSPort int
	// TLSCertFile and TLSKeyFile are the PEM certificate chain and key of
	// the TLS listener, and of the web console with WebTLS.
	TLSCertFile, TLSKeyFile string
	// WebTLS serves the console over HTTPS with that certificate.
	WebTLS bool
	// NATSURL of an external server; empty starts an embedded one on
	// NATSHost:NATSPort (port -1 picks a free one) with JetStream in
	// NATSStoreDir (a temporary directory when empty).
	NATSURL      string
	NATSHost     string
	NATSPort     int
	NATSStoreDir string
	// NATSUser and NATSPassword are the callpark processes' own NATS user.
	// The embedded server admits only that user and one user per customer
	// with an API token (control/api.Users); its password is NATSPassword,
	// else the contents of NATSSecretFile (made with a random secret when
	// missing, so split core and control processes can share it), else a
	// random one for this run. With an external server they are the
	// credentials to connect with (empty: none, or those in NATSURL).
	NATSUser       string
	NATSPassword   string
	NATSSecretFile string
	// EventRetention is how long the JetStream event stream keeps events.
	EventRetention time.Duration
	// Dialplans is the directory of dialplan files.
	Dialplans string
	// ReloadInterval is how often dialplan files are polled for changes.
	ReloadInterval time.Duration
	// MetricsAddr serves /metrics when not empty.
	MetricsAddr string
	// WebAddr serves the receptionist console (control/console) when not
	// empty and the control plane runs here.
	WebAddr string
	// DrainTimeout bounds the lame-duck phase on shutdown.
	DrainTimeout time.Duration
	// SIPStrangers bounds the TCP and TLS connections no request has yet
	// authenticated over (core.StrangerLimits; zero values: defaults).
	SIPStrangers core.StrangerLimits
	// MaxLegs bounds live SIP legs (0: what the open-file limit allows);
	// a new INVITE past it gets 503.
	MaxLegs int
	// MaxActiveLegs: while this many legs are up and not on music on
	// hold, new calls get 503 (0: core.DefaultMaxActiveLegs; negative:
	// never; core.Admission).
	MaxActiveLegs int
	// DecisionTimeout is how long a new call waits for the control
	// plane's first command before it gets 503 (default 5s); while the
	// most waiting calls have waited MaxDecisionDelay (default 5s), new
	// calls get 503 at once (core.Admission).
	DecisionTimeout  time.Duration
	MaxDecisionDelay time.Duration
	// MaxQueueDelay: while SIP datagrams wait longer than this in the UDP
	// socket's receive queue, new calls get 503 (default 50ms; negative:
	// never; core.Admission).
	MaxQueueDelay time.Duration
	// ShedAfter: while the control plane's oldest unhandled event is older
	// than this, new extension calls get 503 (default 1s; negative: never).
	ShedAfter time.Duration
	// MemTrim: once this long passes with no garbage collection after a
	// busy spell, free memory goes back to the OS (internal/memtrim);
	// 0 leaves it to the Go runtime. One per process: tests that start
	// many PBXs leave it off.
	MemTrim time.Duration
	// KeepAlive is how often UDP contacts get an OPTIONS (0: never); one
	// that does not answer is unregistered.
	KeepAlive time.Duration
	// PlainMusic sends music on hold through each leg's own socket even
	// where a raw socket would batch it (core.Config.MusicBatch).
	PlainMusic bool
	// MusicShards spreads music on hold over this many pacing goroutines
	// (0: one per core).
	MusicShards int
	// MediaPriority is the real-time priority of the music pacing threads
	// (core.Config.MediaPriority, as core.MediaPriority allows; 0: none).
	MediaPriority int
	// MediaPollers is the number of goroutines reading the legs' RTP
	// (0: one per P).
	MediaPollers int
	// DialogKeepAlive is how often an answered leg's far end gets an
	// in-dialog OPTIONS (0: never); one that answers 481 or nothing is hung
	// up, and a parked call it left is abandoned, not kept forever.
	DialogKeepAlive time.Duration
	// Bans tunes the banning of addresses that fail authentication
	// (Trusted lists the prefixes never banned); Bans.Failures < 0 turns
	// banning off.
	Bans ban.Config
	// RegistrarMinExpires, when set, lowers the minimum registration
	// interval (tests).
	RegistrarMinExpires time.Duration
	// SubscribeMinExpires, when set, lowers the minimum BLF subscription
	// interval (tests); SubscribeNotifyTimeout bounds a NOTIFY's wait for
	// its answer.
	SubscribeMinExpires    time.Duration
	SubscribeNotifyTimeout time.Duration
	// CoreTesting hooks tests into the core (core.TestingKnobs).
	CoreTesting *core.TestingKnobs

	Log        *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Validate fills defaults and checks the config.
func (c *Config) Validate() error {
	if c.Role == "" {
		c.Role = RoleAll
	}
	switch c.Role {
	case RoleAll, RoleCore, RoleControl:
	default:
		return errors.New("role must be all, core or control")
	}
	if c.Role == RoleControl && c.NATSURL == "" {
		return errors.New("the control role needs --nats (the core's NATS server)")
	}
	if c.Node == "" {
		c.Node = "n1"
	}
	if !events.ValidNode(c.Node) {
		return fmt.Errorf("invalid node name %q: lower-case letters, digits and '-'", c.Node)
	}
	if cl := c.Cluster; cl != nil {
		if cl.Secret == "" {
			return errors.New("a cluster needs a secret shared by its nodes (internal legs are signed with it)")
		}
		if cl.Name == "" {
			cl.Name = "callpark"
		}
		if cl.Replicas == 0 {
			cl.Replicas = 1
			if len(cl.Routes) > 0 || c.NATSURL != "" {
				cl.Replicas = 3
			}
		}
	}
	if c.SIPHost == "" {
		c.SIPHost = "127.0.0.1"
	}
	if c.SIPPort == 0 {
		c.SIPPort = 5060
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("TLS needs both a certificate and a key file")
	}
	if c.WebTLS && c.TLSCertFile == "" {
		return errors.New("an HTTPS console needs a TLS certificate and key")
	}
	if c.TLSCertFile != "" && c.SIPTLSPort == 0 {
		c.SIPTLSPort = 5061
	}
	if c.NATSHost == "" {
		c.NATSHost = "127.0.0.1"
	}
	if c.NATSPort == 0 {
		c.NATSPort = 4222
	}
	if c.EventRetention == 0 {
		c.EventRetention = 24 * time.Hour
	}
	if c.Dialplans == "" {
		return errors.New("a dialplan directory is required")
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.NATSUser == "" {
		c.NATSUser = "callpark"
	}
	if c.Registerer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = reg, reg
	}
	return nil
}
