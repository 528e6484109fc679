package core

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/core/audio"
	"github.com/callpark/callpark/core/rtp"
	"github.com/callpark/callpark/internal/metric"
)

// metrics are the core's Prometheus series, registered on the Registerer
// passed in Config.
type metrics struct {
	activeCalls   prometheus.Gauge
	registrations prometheus.Gauge
	// trunkRegistered is 1 while a trunk is registered to its carrier.
	trunkRegistered *prometheus.GaugeVec
	calls           *prometheus.CounterVec
	commands        *prometheus.CounterVec
	commandErrors   *prometheus.CounterVec
	authFailures    *prometheus.CounterVec
	badRequests     *prometheus.CounterVec
	refusedConns    *prometheus.CounterVec
	rtpWriteErrors  prometheus.Counter
	panics          prometheus.Counter
	unreachable     prometheus.Counter
	lostLegs        prometheus.Counter
	musicBatched    prometheus.Counter
	overload        *prometheus.CounterVec
	decisionDelay   prometheus.Histogram
	queueWait       prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	s := metric.NewSet(r)
	m := &metrics{
		activeCalls:     s.Gauge("callpark_core_active_legs", "SIP legs (channels) in progress."),
		registrations:   s.Gauge("callpark_registrations", "Registered contacts."),
		trunkRegistered: s.Gauges("callpark_trunk_registered", "1 while a trunk is registered to its carrier (outbound registration), else 0.", "customer", "trunk"),
		calls:           s.Counters("callpark_core_legs_total", "SIP legs started, by direction.", "direction"),
		commands:        s.Counters("callpark_core_commands_total", "Commands executed, by op.", "op"),
		commandErrors:   s.Counters("callpark_core_command_errors_total", "Commands that failed, by op and code.", "op", "code"),
		authFailures:    s.Counters("callpark_auth_failures_total", "Digest authentication failures, by reason.", "reason"),
		badRequests:     s.Counters("callpark_sip_rejected_requests_total", "Malformed or unacceptable SIP requests, by reason.", "reason"),
		refusedConns:    s.Counters("callpark_sip_refused_connections_total", "TCP and TLS connections refused or closed before a request over them authenticated, by reason (banned, rate, per_address, total, unproven).", "reason"),
		rtpWriteErrors:  s.Counter("callpark_rtp_write_errors_total", "RTP packets that could not be sent."),
		panics:          s.Counter("callpark_sip_handler_panics_total", "Panics recovered while handling a SIP request (each answered 500)."),
		unreachable:     s.Counter("callpark_unreachable_contacts_total", "Registered contacts removed because they stopped answering."),
		lostLegs:        s.Counter("callpark_lost_legs_total", "Answered legs hung up because their far end stopped answering in-dialog OPTIONS."),
		musicBatched:    s.Counter("callpark_music_batched_packets_total", "Music-on-hold packets sent in batches through the raw socket."),
		overload:        s.Counters("callpark_overload_rejections_total", "New INVITEs answered 503 by admission control, by reason.", "reason"),
		decisionDelay:   s.Histogram("callpark_core_decision_seconds", "Time from a new inbound call to the control plane's first command on it.", []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}),
		queueWait:       s.Histogram("callpark_sip_queue_wait_seconds", "Time SIP datagrams waited in the UDP socket's receive queue before the core read them.", []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
	}
	return m, s.Err()
}

// watchDialogs exports the number of SIP dialogs the core keeps, counted
// at each scrape: after any load they must come back to the calls in
// progress.
func watchDialogs(r prometheus.Registerer, c *Core) error {
	s := metric.NewSet(r)
	const name, help = "callpark_core_sip_dialogs", "SIP dialogs the media engine keeps, by side."
	count := func(inbound bool) float64 {
		n := 0
		for _, ch := range c.allChannels() {
			ch.mu.Lock()
			if ch.dlg != nil && ch.inbound == inbound && !ch.ended {
				n++
			}
			ch.mu.Unlock()
		}
		return float64(n)
	}
	s.GaugeFunc(name, help, prometheus.Labels{"side": "server"}, func() float64 { return count(true) })
	s.GaugeFunc(name, help, prometheus.Labels{"side": "client"}, func() float64 { return count(false) })
	return s.Err()
}

// watchMedia exports the RTP engine's socket pairs: the legs' and the
// spares resting for the next legs (rtp/spares.go).
func watchMedia(r prometheus.Registerer, e *rtp.Engine) error {
	s := metric.NewSet(r)
	s.GaugeFunc("callpark_rtp_legs", "Legs with RTP sockets open.", nil,
		func() float64 { return float64(e.Legs()) })
	s.GaugeFunc("callpark_rtp_spare_pairs", "RTP/RTCP socket pairs of ended legs kept for new legs.", nil,
		func() float64 { return float64(e.Spares()) })
	return s.Err()
}

// watchMusic exports the music hubs' listeners and pacing: packets that
// went out late (a late tick catching up) or never (a tick later still).
func watchMusic(r prometheus.Registerer, hubs *audio.Hubs) error {
	s := metric.NewSet(r)
	s.GaugeFunc("callpark_music_listeners", "Legs listening to music on hold (parked calls among them); the others count toward --max-active-legs.", nil,
		func() float64 { return float64(hubs.Stats().Listeners) })
	s.CounterFunc("callpark_music_late_packets_total", "Music-on-hold packets sent late, up to 40 ms, by a tick that came late.", nil,
		func() float64 { return float64(hubs.Stats().Late) })
	s.CounterFunc("callpark_music_skipped_packets_total", "Music-on-hold packets never sent: their tick came more than 40 ms late.", nil,
		func() float64 { return float64(hubs.Stats().Skipped) })
	return s.Err()
}
