package presence

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	m := &metrics{
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callpark_blf_subscriptions", Help: "Live dialog-event (BLF) subscriptions.",
		}),
		notifies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_blf_notifies_total", Help: "Dialog-event NOTIFYs accepted by subscribers.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_blf_notify_failures_total", Help: "Dialog-event NOTIFYs that failed, by reason (481, timeout, rejected, error).",
		}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callpark_blf_subscribe_rejected_total", Help: "SUBSCRIBE requests refused after authentication, by reason.",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callpark_blf_expired_total", Help: "Dialog-event subscriptions that expired without a refresh.",
		}),
	}
	if r == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.subscriptions, m.notifies, m.failures, m.rejected, m.expired} {
		errs = append(errs, r.Register(c))
	}
	return m, errors.Join(errs...)
}
