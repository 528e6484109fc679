// Package metric is the one way callpark declares its Prometheus series:
// a Set creates each collector and registers it in the same line, and
// keeps the first registration errors for its owner to return. A Set on a
// nil Registerer hands out working collectors that are simply not
// exported (unit tests, tools).
package metric

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Set registers the collectors it creates on one Registerer.
type Set struct {
	reg  prometheus.Registerer
	errs []error
}

// NewSet returns a Set registering on reg (nil: register nowhere).
func NewSet(reg prometheus.Registerer) *Set { return &Set{reg: reg} }

// Err reports every registration that failed (duplicate names, mostly).
func (s *Set) Err() error { return errors.Join(s.errs...) }

// register registers c on s and returns it, so that each constructor
// below is one line.
func register[C prometheus.Collector](s *Set, c C) C {
	if s.reg != nil {
		if err := s.reg.Register(c); err != nil {
			s.errs = append(s.errs, err)
		}
	}
	return c
}

// Counter is a counter without labels.
func (s *Set) Counter(name, help string) prometheus.Counter {
	return register(s, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// Counters is a counter family over labels.
func (s *Set) Counters(name, help string, labels ...string) *prometheus.CounterVec {
	return register(s, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// Gauge is a gauge without labels.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	return register(s, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// Gauges is a gauge family over labels.
func (s *Set) Gauges(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(s, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// GaugeFunc is a gauge read from fn at each scrape, so it cannot drift
// from what it counts; constant labels tell apart several of one name.
func (s *Set) GaugeFunc(name, help string, labels prometheus.Labels, fn func() float64) {
	register(s, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, fn))
}

// CounterFunc is a counter read from fn at each scrape (fn must never
// decrease), for counts kept elsewhere.
func (s *Set) CounterFunc(name, help string, labels prometheus.Labels, fn func() float64) {
	register(s, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, fn))
}

// Histogram is a histogram without labels.
func (s *Set) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(s, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// Histograms is a histogram with labels.
func (s *Set) Histograms(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(s, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}

// Runtime registers the series every Go service exports besides its own:
// the Go runtime's (go_gc_duration_seconds, go_goroutines, go_memstats_*)
// and the process's (CPU seconds, resident memory, descriptors). A
// Registerer that has them already (prometheus.DefaultRegisterer) is
// left as it is.
func (s *Set) Runtime() {
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if s.reg == nil {
			return
		}
		if err := s.reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			s.errs = append(s.errs, err)
		}
	}
}
