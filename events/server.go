package events

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures an embedded NATS server.
type ServerConfig struct {
	// Host and Port to listen on; Port -1 picks a free port (tests).
	Host string
	Port int
	// JetStream enables JetStream, stored under StoreDir (a temporary
	// directory when empty).
	JetStream bool
	StoreDir  string
	// Users, when not empty, are the only clients let in (user name and
	// password, each with its permissions): an anonymous client is refused.
	// Empty leaves the server open, for tests of this package's callers.
	Users []*server.User
	// Name names the server (each server of a cluster needs its own).
	Name string
	// Cluster, when set, joins the server to a NATS cluster.
	Cluster *ClusterConfig
}

// ClusterConfig is an embedded server's part in a NATS cluster: JetStream
// is then clustered too (replicated streams and KV buckets).
type ClusterConfig struct {
	Name string // the cluster's name, the same on every server
	Host string // the route listener (default: Host)
	Port int
	// Routes are the other servers' route URLs (nats-route://host:port).
	Routes []string
}

// Server is an embedded nats-server.
type Server struct {
	*server.Server
	mu   sync.Mutex
	opts *server.Options
}

// RunServer starts an embedded nats-server and waits until it accepts
// connections. Shut it down with Shutdown.
func RunServer(cfg ServerConfig) (*Server, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	opts := &server.Options{
		Host:       cfg.Host,
		Port:       cfg.Port,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
		Users:      cfg.Users,
	}
	opts.ServerName = cfg.Name
	if cl := cfg.Cluster; cl != nil {
		opts.Cluster = server.ClusterOpts{Name: cl.Name, Host: cmpOr(cl.Host, cfg.Host), Port: cl.Port}
		for _, r := range cl.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.JetStream {
		opts.JetStream = true
		dir := cfg.StoreDir
		if dir == "" {
			d, err := os.MkdirTemp("", "callpark-js-")
			if err != nil {
				return nil, err
			}
			dir = d
		}
		opts.StoreDir = dir
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats: embedded server not ready on %s:%d", cfg.Host, cfg.Port)
	}
	return &Server{Server: s, opts: opts}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// SetUsers replaces the users let in (a dialplan reload adds, removes or
// re-keys customers). Connected clients whose user is gone or whose
// permissions changed are dealt with by nats-server's own reload.
func (s *Server) SetUsers(users []*server.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.opts.Clone()
	next.Users = users
	// The port was resolved at start; a reload must keep it.
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		next.Port = a.Port
	}
	if err := s.ReloadOptions(next); err != nil {
		return fmt.Errorf("nats: reload users: %w", err)
	}
	s.opts = next
	return nil
}
