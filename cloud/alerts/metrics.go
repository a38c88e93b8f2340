package alerts

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package-level: one process runs one deliverer, and /metrics
// serves the default registry.
var (
	deliveries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_alert_deliveries_total",
		Help: "Alert webhook attempts by outcome: delivered (a 2xx), retry (failed, tried again later), failed (given up three days after the event).",
	}, []string{"outcome"})
	lag = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "parkgate_alert_lag_seconds",
		Help:    "Time from an alert event's creation (the commit of what it reports) to its delivery to an endpoint.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 72 * 3600},
	})
	pending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "parkgate_alert_pending",
		Help: "Alert deliveries neither delivered nor given up, counted every few seconds.",
	})
)

// The outcomes of an attempt, the label values of parkgate_alert_deliveries_total.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeFailed    = "failed"
)

func init() {
	// Zero series exist from the start, so a dashboard's rate() has a
	// baseline before the first alert.
	for _, o := range []string{outcomeDelivered, outcomeRetry, outcomeFailed} {
		deliveries.WithLabelValues(o)
	}
}
