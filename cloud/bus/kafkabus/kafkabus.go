package kafkabus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/bus/internal/busmetrics"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	_ bus.Publisher = (*Bus)(nil)
	_ bus.Consumer  = (*Bus)(nil)
)

var (
	mPublished     = busmetrics.Published.WithLabelValues(busmetrics.Kafka)
	mPublishErrors = busmetrics.PublishErrors.WithLabelValues(busmetrics.Kafka)
	mPublishSecs   = busmetrics.PublishSeconds.WithLabelValues(busmetrics.Kafka)
	mProcessed     = busmetrics.Processed.WithLabelValues(busmetrics.Kafka)
	mFailures      = busmetrics.Failures.WithLabelValues(busmetrics.Kafka)
)

// Defaults and the environment variable cmd/parkcloud reads the brokers from.
const (
	DefaultTopic = "parkgate.payment-events"
	DefaultGroup = "parkgate-payment-events"
	EnvBrokers   = "KAFKA_BROKERS"
)

// Record headers carrying the Message fields other than Key and Payload.
const (
	headerID        = "event-id"
	headerType      = "event-type"
	headerCreatedAt = "event-created-at"
)

// Config configures a Bus.
//
// The topic is not created here: create it with a replication factor of 3
// and min.insync.replicas=2, so that "acknowledged by all in-sync replicas"
// means at least two copies, and do not add partitions to it while events
// are in flight, since that moves keys to other partitions and breaks their
// order.
type Config struct {
	// Brokers are the seed brokers, host:port (see ParseBrokers).
	Brokers []string
	// Topic is the topic events go to (default DefaultTopic).
	Topic string
	// Group is the consumer group all Runs join (default DefaultGroup).
	Group string
	// Backoff is the wait after a handler error (default bus.DefaultBackoff).
	Backoff bus.Backoff
	// Logger receives handler failures and consumer trouble
	// (default slog.Default()).
	Logger *slog.Logger
	// Opts are extra franz-go options for the producer and the consumers:
	// TLS, SASL, timeouts.
	Opts []kgo.Opt
	// ConsumerOpts are extra options for consumers only, such as
	// kgo.HeartbeatInterval or kgo.SessionTimeout.
	ConsumerOpts []kgo.Opt
}

// ParseBrokers splits a comma-separated broker list, as KAFKA_BROKERS holds
// it, dropping blanks.
func ParseBrokers(s string) []string {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Bus is the Kafka payment-event bus: one producer client, and one consumer
// client per Run.
type Bus struct {
	cfg  Config
	log  *slog.Logger
	prod *kgo.Client

	// maxQueued is how many records a partition's worker may have waiting
	// before that partition's fetches pause (defaultMaxQueued; tests lower
	// it). onPause, when set by tests, is called as a partition pauses.
	maxQueued int
	onPause   func(partition int32)
}

// New returns a bus for cfg. It does not wait for the brokers to answer
// (see Ping); Close releases the producer.
func New(cfg Config) (*Bus, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("kafkabus: no brokers (set %s)", EnvBrokers)
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Backoff == (bus.Backoff{}) {
		cfg.Backoff = bus.DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		// Idempotent (franz-go's default) with acks from every in-sync
		// replica: a record is durable when Publish returns, and the
		// client's own retries neither duplicate nor reorder it.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Murmur2 of the key, as the Java client does, so any producer puts
		// one reservation's events on the same partition.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// Let a webhook's deadline end a Publish even while its record is
		// in flight. The price is a possible duplicate if the webhook is
		// retried, which consumers tolerate; the alternative is a request
		// that outlives Stripe's patience.
		kgo.AllowIdempotentProduceCancellation(),
	}, cfg.Opts...)
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: producer: %w", err)
	}
	return &Bus{cfg: cfg, log: cfg.Logger.With("component", "kafkabus"), prod: prod, maxQueued: defaultMaxQueued}, nil
}

// Close flushes nothing (Publish is synchronous) and closes the producer.
// Runs have their own clients and end with their contexts.
func (b *Bus) Close() { b.prod.Close() }

// Ping reports whether a broker answers, for readiness checks.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.prod.Ping(ctx); err != nil {
		return fmt.Errorf("kafkabus: ping: %w", err)
	}
	return nil
}

// Publish produces m keyed by m.Key and returns once all in-sync replicas
// have acknowledged it. duplicate is always false: Kafka cannot tell, and a
// republished ID is delivered again.
func (b *Bus) Publish(ctx context.Context, m bus.Message) (duplicate bool, err error) {
	if err := m.Validate(); err != nil {
		return false, err
	}
	r := &kgo.Record{
		Key:   []byte(m.Key),
		Value: m.Payload,
		Headers: []kgo.RecordHeader{
			{Key: headerID, Value: []byte(m.ID)},
			{Key: headerType, Value: []byte(m.Type)},
		},
	}
	if !m.CreatedAt.IsZero() {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerCreatedAt, Value: []byte(m.CreatedAt.UTC().Format(time.RFC3339Nano))})
	}
	start := time.Now()
	err = b.prod.ProduceSync(ctx, r).FirstErr()
	mPublishSecs.Observe(time.Since(start).Seconds())
	if err != nil {
		mPublishErrors.Inc()
		return false, fmt.Errorf("kafkabus: publish %s: %w", m.ID, err)
	}
	mPublished.Inc()
	return false, nil
}

// message turns a record back into the Message it was published from. A
// record without an id header (not ours) is named by its position.
func message(r *kgo.Record) bus.Message {
	m := bus.Message{Key: string(r.Key), Payload: r.Value}
	for _, h := range r.Headers {
		switch h.Key {
		case headerID:
			m.ID = string(h.Value)
		case headerType:
			m.Type = string(h.Value)
		case headerCreatedAt:
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				m.CreatedAt = t
			}
		}
	}
	if m.ID == "" {
		m.ID = fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	}
	return m
}
