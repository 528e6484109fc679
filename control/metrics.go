package control

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/internal/metric"
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
	commandTime   *prometheus.HistogramVec
	eventWait     prometheus.Histogram
	apiRequests   *prometheus.CounterVec
	shed          prometheus.Counter
	partitions    prometheus.Gauge
	lost          prometheus.Counter
}

// newMetrics creates the collectors and registers them with reg (when not
// nil). The parked_calls gauge reads the store, so it can never drift.
func newMetrics(reg prometheus.Registerer, store *state.Store) (*metrics, error) {
	s := metric.NewSet(reg)
	s.GaugeFunc("callpark_parked_calls", "Calls parked right now.", nil, func() float64 { return float64(store.ParkedCount()) })
	m := &metrics{
		parks:         s.Counters("callpark_parks_total", "Calls parked, by customer.", "customer"),
		retrieves:     s.Counters("callpark_retrieves_total", "Parked calls retrieved, by customer.", "customer"),
		abandons:      s.Counters("callpark_abandons_total", "Parked calls whose caller hung up before retrieval, by customer.", "customer"),
		returns:       s.Counters("callpark_returns_total", "Automatic returns of parked calls, by customer and outcome (answered, forwarded, or the failure reason: busy, no_answer, unreachable, gave_up, ...).", "customer", "outcome"),
		parkDuration:  s.Histogram("callpark_park_duration_seconds", "Time calls stayed parked, until retrieved or abandoned.", []float64{1, 5, 10, 20, 30, 60, 120, 300, 600, 1800}),
		events:        s.Counters("callpark_control_events_total", "Events handled by the control plane, by type.", "type"),
		commandErrors: s.Counters("callpark_control_command_errors_total", "Core commands that failed, by op.", "op"),
		commandTime: s.Histograms("callpark_control_command_seconds", "Time from sending a core command to its reply, by op (a worker waits for each).",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, "op"),
		eventWait: s.Histogram("callpark_control_event_wait_seconds", "Time from an event's publication to the start of its handling (NATS, the worker queues, a phone's earlier events).",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}),
		apiRequests: s.Counters("callpark_api_requests_total", "Call-control API requests, by endpoint and result code (ok or an error code).", "endpoint", "code"),
		shed:        s.Counter("callpark_control_shed_calls_total", "New calls refused with 503 because the control plane's queues lagged (control/shed.go)."),
		partitions:  s.Gauge("callpark_control_partitions", "Cluster partitions this control plane holds (control/cluster.go)."),
		lost:        s.Counter("callpark_lost_parked_calls_total", "Parked calls lost with the node that carried their media (call.lost)."),
	}
	return m, s.Err()
}
