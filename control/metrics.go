package control

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/control/state"
)

// metrics are the control plane's Prometheus collectors.
type metrics struct {
	parks         *prometheus.CounterVec
	retrieves     *prometheus.CounterVec
	abandons      *prometheus.CounterVec
	returns       *prometheus.CounterVec
	parkDuration  prometheus.Histogram
	events        *prometheus.CounterVec
	commandErrors *prometheus.CounterVec
	apiRequests   *prometheus.CounterVec
	shed          prometheus.Counter
	partitions    prometheus.Gauge
	lost          prometheus.Counter
}

// newMetrics creates the collectors and registers them with reg (when not
// nil). The parked_calls gauge reads the store, so it can never drift.
func newMetrics(reg prometheus.Registerer, store *state.Store) (*metrics, error) {
	m := &metrics{
		parks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_parks_total",
			Help: "Calls parked, by customer.",
		}, []string{"customer"}),
		retrieves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_retrieves_total",
			Help: "Parked calls retrieved, by customer.",
		}, []string{"customer"}),
		abandons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_abandons_total",
			Help: "Parked calls whose caller hung up before retrieval, by customer.",
		}, []string{"customer"}),
		returns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_returns_total",
			Help: "Automatic returns of parked calls, by customer and outcome (answered, forwarded, or the failure reason: busy, no_answer, unreachable, gave_up, ...).",
		}, []string{"customer", "outcome"}),
		parkDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callpark_park_duration_seconds",
			Help:    "Time calls stayed parked, until retrieved or abandoned.",
			Buckets: []float64{1, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_control_events_total",
			Help: "Events handled by the control plane, by type.",
		}, []string{"type"}),
		commandErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_control_command_errors_total",
			Help: "Core commands that failed, by op.",
		}, []string{"op"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_api_requests_total",
			Help: "Call-control API requests, by endpoint and result code (ok or an error code).",
		}, []string{"endpoint", "code"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_control_shed_calls_total",
			Help: "New calls refused with 503 because the control plane's queues lagged (control/shed.go).",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callpark_control_partitions",
			Help: "Cluster partitions this control plane holds (control/cluster.go).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_lost_parked_calls_total",
			Help: "Parked calls lost with the node that carried their media (call.lost).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	parked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callpark_parked_calls",
		Help: "Calls parked right now.",
	}, func() float64 { return float64(store.ParkedCount()) })
	var errs []error
	for _, c := range []prometheus.Collector{parked, m.parks, m.retrieves, m.abandons, m.returns, m.parkDuration, m.events, m.commandErrors, m.apiRequests, m.shed, m.partitions, m.lost} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
