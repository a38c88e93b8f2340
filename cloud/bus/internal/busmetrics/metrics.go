package busmetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The backend label values.
const (
	Postgres = "postgres"
	Kafka    = "kafka"
)

var (
	// Published counts messages made durable by Publish.
	Published = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_bus_published_total",
		Help: "Payment events made durable on the bus.",
	}, []string{"backend"})
	// Duplicates counts publishes of an ID already recorded.
	Duplicates = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_bus_duplicates_total",
		Help: "Payment events published again with an id already recorded.",
	}, []string{"backend"})
	// PublishErrors counts Publish calls that failed.
	PublishErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_bus_publish_errors_total",
		Help: "Publishes of payment events that failed (the webhook answered 5xx).",
	}, []string{"backend"})
	// PublishSeconds is how long Publish took, which the webhook's
	// latency is mostly made of.
	PublishSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parkgate_bus_publish_duration_seconds",
		Help:    "Time to make one payment event durable.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"backend"})
	// Processed counts messages whose handler succeeded.
	Processed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_bus_processed_total",
		Help: "Payment events handled successfully.",
	}, []string{"backend"})
	// Failures counts handler errors (and panics); each is retried.
	Failures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_bus_failures_total",
		Help: "Payment event handler failures; the event is delivered again after a backoff.",
	}, []string{"backend"})
	// QueueDepth is the number of unprocessed messages, where counting them
	// is cheap (Postgres; capped, see pgbus).
	QueueDepth = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parkgate_bus_queue_depth",
		Help: "Payment events recorded but not yet handled successfully.",
	}, []string{"backend"})
)
