package core

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/core/ban"
	"github.com/callpark/callpark/core/presence"
	"github.com/callpark/callpark/core/registrar"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/sounds"
)

// Config holds what the core needs. Everything is explicit: no globals.
type Config struct {
	// Host and Port the SIP server binds (UDP, and TCP when TCP is set).
	// Media binds the same host.
	Host string
	Port int
	TCP  bool
	// TLS, when set, serves SIP over TLS on TLSPort (same host) with
	// SRTP (SDES, RFC 4568) for the calls it carries (tls.go).
	TLS     *tls.Config
	TLSPort int
	// Directory resolves accounts, trunks and domains (directory.go).
	Directory Directory
	// Node names this core (events.ValidNode; default "n1"). Every leg id
	// starts with it, so commands find the core that owns a leg.
	Node string
	// Announce, when set, publishes the core's announcements (start,
	// every events.AnnounceInterval, stop) for control planes and peers.
	Announce func(*events.Announcement)
	// Peers returns the SIP address of another node's core: legs on two
	// nodes are joined by an internal leg between them (cluster.go).
	Peers func(node string) (sipAddr string, ok bool)
	// ClusterSecret signs internal legs; a request without a valid
	// signature is never taken for one (random when empty: one node).
	ClusterSecret []byte
	Sounds        *sounds.Library
	// Publish sends an event (to NATS in production).
	Publish    func(*events.Event)
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// UserAgent is the SIP User-Agent/Server header value.
	UserAgent string
	// Registrar tunes registration expiry; zero values take defaults.
	Registrar registrar.Options
	// Presence tunes BLF subscriptions (expiry bounds, NOTIFY timeout);
	// Send, Contact, Log and Registerer are filled in by the core.
	Presence presence.Config
	// Admission bounds the load taken on (admission.go).
	Admission Admission
	// KeepAlive is how often UDP contacts are sent OPTIONS; one that does
	// not answer is unregistered (keepalive.go). Zero disables it.
	KeepAlive time.Duration
	// DialogKeepAlive is how often an answered leg's far end is sent an
	// in-dialog OPTIONS; one that answers 481 or nothing at all is hung up
	// (liveness.go). Zero disables it.
	DialogKeepAlive time.Duration
	// MusicBatch sends music on hold in batches through a raw socket
	// (musicbatch.go) when the process may open one (CAP_NET_RAW).
	MusicBatch bool
	// MusicShards is the number of pacing goroutines (and raw sockets)
	// music on hold is spread over; 0: one per core (GOMAXPROCS).
	MusicShards int
	// MediaPollers is the number of goroutines reading the legs' RTP
	// (package rtp); 0: one per core.
	MediaPollers int
	// MediaPriority, when above 0, is the real-time priority (SCHED_RR,
	// 1-99) of the threads that pace music on hold (see MediaPriority,
	// which tells whether the process may have it); 0 leaves them to the
	// fair scheduler.
	MediaPriority int
	// Strangers bounds the TCP and TLS connections no request has yet
	// authenticated over (strangers.go).
	Strangers StrangerLimits
	// Bans drops every packet of an address that failed authentication
	// too often (nil: no bans); the registrar reports failures to it.
	Bans *ban.List
	// Testing holds the tests' hooks into the core's steps; nil in
	// production.
	Testing *TestingKnobs
}
