package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package-level: one process runs one relay and one ingest, and
// /metrics serves the default registry.
var (
	relayPublished = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_relay_published_total",
		Help: "Outbox changes published, acknowledged by the broker and marked published.",
	})
	relayPublishErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_relay_publish_errors_total",
		Help: "Publish batches that stopped on an error or timeout; their unacknowledged rest is sent again.",
	})
	relayUntrusted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_relay_untrusted_acks_total",
		Help: "Publish completions ignored because the MQTT connection changed after the publish (paho may complete in-flight tokens on reconnect without a PUBACK).",
	})
	relayDelay = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "parkgate_relay_delay_seconds",
		Help:    "Time from an outbox row's commit to its being marked published after the broker's PUBACK.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	relayTargetedClaims = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_relay_targeted_claims_total",
		Help: "Claims of the lots a wake named, rather than of every lot's changes.",
	})
	relayMarkGroup = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "parkgate_relay_mark_group_size",
		Help:    "How many drains' marks went to the database in one round trip.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
	})
	relayLag = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "parkgate_relay_lag_seconds",
		Help: "How old the most recently published change was when it was marked published.",
	})
	relayBacklog = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "parkgate_relay_backlog",
		Help: "Outbox changes not yet published, counted at each poll.",
	})

	ingestEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_ingest_events_total",
		Help: "Gate events ingested, by result: stored (first delivery) or duplicate (redelivery, ignored).",
	}, []string{"result"})
	ingestTransitions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_ingest_transitions_total",
		Help: "Reservations moved by gate events, by the status they moved to.",
	}, []string{"to"})
	ingestRejects = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_ingest_rejects_total",
		Help: "Messages dropped (and acknowledged) because no retry could make them valid, by reason.",
	}, []string{"reason"})
	ingestErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_ingest_errors_total",
		Help: "Failed ingest transactions that are retried (deadlocks, serialization failures, database unavailable).",
	})
	ingestStatuses = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_ingest_gate_status_total",
		Help: "Gate status messages recorded.",
	})
)

// The label values of parkgate_ingest_rejects_total and
// parkgate_ingest_events_total.
const (
	rejectTopic         = "topic"          // not a topic of ours
	rejectBadJSON       = "bad_json"       // not a message
	rejectInvalid       = "invalid"        // a message, not a valid one
	rejectTopicMismatch = "topic_mismatch" // for another lot or gate than its topic's
	rejectUnknownLot    = "unknown_lot"    // no such lot
	rejectBadSignature  = "bad_signature"  // no key of the lot verifies it
	rejectDatabase      = "database"       // the store answered an error

	ingestStored    = "stored"
	ingestDuplicate = "duplicate"
)

func init() {
	// Every labelled series exists from the start, at zero, so the
	// dashboard's reject rate shows none rather than no data until the
	// first reject (TestScenarios/Dashboard holds it to that).
	for _, r := range []string{rejectTopic, rejectBadJSON, rejectInvalid, rejectTopicMismatch, rejectUnknownLot, rejectBadSignature, rejectDatabase} {
		ingestRejects.WithLabelValues(r)
	}
	ingestEvents.WithLabelValues(ingestStored)
	ingestEvents.WithLabelValues(ingestDuplicate)
}
