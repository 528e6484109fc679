package core

import (
	"context"
	"errors"

	"github.com/emiago/diago"
	"github.com/prometheus/client_golang/prometheus"
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
	rtpWriteErrors  prometheus.Counter
	panics          prometheus.Counter
	unreachable     prometheus.Counter
	lostLegs        prometheus.Counter
	musicBatched    prometheus.Counter
	overload        *prometheus.CounterVec
	decisionDelay   prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		activeCalls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callpark_core_active_legs", Help: "SIP legs (channels) in progress.",
		}),
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callpark_registrations", Help: "Registered contacts.",
		}),
		trunkRegistered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "callpark_trunk_registered", Help: "1 while a trunk is registered to its carrier (outbound registration), else 0.",
		}, []string{"customer", "trunk"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_core_legs_total", Help: "SIP legs started, by direction.",
		}, []string{"direction"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_core_commands_total", Help: "Commands executed, by op.",
		}, []string{"op"}),
		commandErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_core_command_errors_total", Help: "Commands that failed, by op and code.",
		}, []string{"op", "code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_auth_failures_total", Help: "Digest authentication failures, by reason.",
		}, []string{"reason"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_sip_rejected_requests_total", Help: "Malformed or unacceptable SIP requests, by reason.",
		}, []string{"reason"}),
		rtpWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_rtp_write_errors_total", Help: "RTP packets that could not be sent.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_sip_handler_panics_total", Help: "Panics recovered while handling a SIP request (each answered 500).",
		}),
		unreachable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_unreachable_contacts_total", Help: "Registered contacts removed because they stopped answering.",
		}),
		lostLegs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_lost_legs_total", Help: "Answered legs hung up because their far end stopped answering in-dialog OPTIONS.",
		}),
		musicBatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_music_batched_packets_total", Help: "Music-on-hold packets sent in batches through the raw socket.",
		}),
		overload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_overload_rejections_total", Help: "New INVITEs answered 503 by admission control, by reason.",
		}, []string{"reason"}),
		decisionDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "callpark_core_decision_seconds", Help: "Time from a new inbound call to the control plane's first command on it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	for _, c := range []prometheus.Collector{m.decisionDelay, m.activeCalls, m.registrations, m.trunkRegistered, m.calls, m.commands, m.commandErrors, m.authFailures, m.badRequests, m.rtpWriteErrors, m.panics, m.unreachable, m.lostLegs, m.musicBatched, m.overload} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// watchDialogs exports the number of dialogs in diago's caches, counted
// at each scrape: after any load they must come back to the calls in
// progress (a dialog left there keeps its media session and messages).
func (m *metrics) watchDialogs(r prometheus.Registerer, dg *diago.Diago) error {
	if r == nil {
		return nil
	}
	count := func(rangeFn func(func(string) bool)) float64 {
		n := 0
		rangeFn(func(string) bool { n++; return true })
		return float64(n)
	}
	server := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callpark_core_sip_dialogs", Help: "SIP dialogs the media engine keeps, by side.", ConstLabels: prometheus.Labels{"side": "server"},
	}, func() float64 {
		return count(func(f func(string) bool) {
			dg.DialogCacheServer().DialogRange(context.Background(), func(id string, _ *diago.DialogServerSession) bool { return f(id) })
		})
	})
	client := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callpark_core_sip_dialogs", Help: "SIP dialogs the media engine keeps, by side.", ConstLabels: prometheus.Labels{"side": "client"},
	}, func() float64 {
		return count(func(f func(string) bool) {
			dg.DialogCacheClient().DialogRange(context.Background(), func(id string, _ *diago.DialogClientSession) bool { return f(id) })
		})
	})
	return errors.Join(r.Register(server), r.Register(client))
}
