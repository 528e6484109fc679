package presence

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/internal/metric"
)

// metrics are the notifier's Prometheus series.
type metrics struct {
	subscriptions prometheus.Gauge
	notifies      prometheus.Counter
	failures      *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	expired       prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	s := metric.NewSet(r)
	m := &metrics{
		subscriptions: s.Gauge("callpark_blf_subscriptions", "Live dialog-event (BLF) subscriptions."),
		notifies:      s.Counter("callpark_blf_notifies_total", "Dialog-event NOTIFYs accepted by subscribers."),
		failures:      s.Counters("callpark_blf_notify_failures_total", "Dialog-event NOTIFYs that failed, by reason (481, timeout, rejected, error).", "reason"),
		rejected:      s.Counters("callpark_blf_subscribe_rejected_total", "SUBSCRIBE requests refused after authentication, by reason.", "reason"),
		expired:       s.Counter("callpark_blf_expired_total", "Dialog-event subscriptions that expired without a refresh."),
	}
	return m, s.Err()
}
