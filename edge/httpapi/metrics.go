package httpapi

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/edge"
)

var _ edge.Observer = (*Metrics)(nil)

// Metrics counts decisions and times them.
type Metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// NewMetrics registers the decision metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkedge_decisions_total",
			Help: "Gate decisions by gate, decision and reason.",
		}, []string{"gate", "decision", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parkedge_decision_seconds",
			Help: "Time from a plate read arriving to the barrier relay being set (or the deny decided).",
			// The target is far under a millisecond; the top buckets catch
			// a store that has gone to disk.
			Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3, 200e-3},
		}, []string{"gate"}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return m, nil
}

// Decided implements edge.Observer.
func (m *Metrics) Decided(gateID string, d edge.Decision, elapsed time.Duration) {
	m.decisions.WithLabelValues(gateID, d.Decision, d.Reason).Inc()
	m.latency.WithLabelValues(gateID).Observe(elapsed.Seconds())
}
