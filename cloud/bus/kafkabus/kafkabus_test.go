package kafkabus_test

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/bus/bustest"
	"github.com/parkgate/parkgate/cloud/bus/kafkabus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newCluster starts an in-process Kafka with the events topic.
func newCluster(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, kafkabus.DefaultTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newBus returns a bus on c tuned for tests: quick retries, and heartbeats
// often enough that rebalances take milliseconds rather than seconds.
func newBus(t *testing.T, c *kfake.Cluster) *kafkabus.Bus {
	t.Helper()
	b, err := kafkabus.New(kafkabus.Config{
		Brokers: c.ListenAddrs(),
		Backoff: bus.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
		ConsumerOpts: []kgo.Opt{
			kgo.HeartbeatInterval(100 * time.Millisecond),
			kgo.FetchMaxWait(250 * time.Millisecond),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestBus(t *testing.T) {
	t.Parallel()
	bustest.Exercise(t, func(t *testing.T) bustest.Bus {
		b := newBus(t, newCluster(t, 6))
		return bustest.Bus{Publisher: b, NewConsumer: func() bus.Consumer { return b }}
	})
}

func TestNewRequiresBrokers(t *testing.T) {
	t.Parallel()
	if _, err := kafkabus.New(kafkabus.Config{}); err == nil {
		t.Fatal("New without brokers: nil error")
	}
}

func TestParseBrokers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"kafka-0:9092", []string{"kafka-0:9092"}},
		{" kafka-0:9092, kafka-1:9092 ,,", []string{"kafka-0:9092", "kafka-1:9092"}},
	}
	for _, tt := range tests {
		if got := kafkabus.ParseBrokers(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("ParseBrokers(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The record on the wire is what other Kafka tooling sees: keyed by the
// message key, the raw payload as value, the other fields as headers.
func TestPublishRecordLayout(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	b := newBus(t, c)
	created := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	m := bus.Message{ID: "evt_1", Key: "res_1", Type: "checkout.session.completed", Payload: []byte(`{"id":"evt_1"}`), CreatedAt: created}
	if _, err := b.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(kafkabus.DefaultTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	r := recs[0]
	headers := map[string]string{}
	for _, h := range r.Headers {
		headers[h.Key] = string(h.Value)
	}
	if string(r.Key) != m.Key || string(r.Value) != string(m.Payload) {
		t.Errorf("record key %q value %q, want %q %q", r.Key, r.Value, m.Key, m.Payload)
	}
	want := map[string]string{"event-id": "evt_1", "event-type": "checkout.session.completed", "event-created-at": "2026-11-25T10:00:00Z"}
	if !maps.Equal(headers, want) {
		t.Errorf("headers %v, want %v", headers, want)
	}
}
