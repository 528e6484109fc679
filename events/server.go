package events

import (
	"fmt"
	"os"
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
}

// RunServer starts an embedded nats-server and waits until it accepts
// connections. Shut it down with Shutdown.
func RunServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	opts := &server.Options{
		Host:       cfg.Host,
		Port:       cfg.Port,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
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
	return s, nil
}
