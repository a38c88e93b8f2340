package kafkabus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A partition whose head record is stuck holds back only itself: the other
// partitions go on, the stuck one stops fetching once its backlog is full
// (memory stays bounded) and, once the head succeeds, resumes and delivers
// everything behind it in order.
func TestStuckPartitionPausesAlone(t *testing.T) {
	t.Parallel()
	const partitions = 4
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, DefaultTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := New(Config{
		Brokers:      c.ListenAddrs(),
		Backoff:      bus.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
		ConsumerOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.FetchMaxWait(250 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.maxQueued = 10
	paused := make(chan int32, 10)
	b.onPause = func(p int32) { paused <- p }

	// Pick keys on partitions other than the stuck key's, by the same
	// hash the producer uses.
	part := func(key string) int {
		return kgo.StickyKeyPartitioner(nil).ForTopic(DefaultTopic).Partition(&kgo.Record{Key: []byte(key)}, partitions)
	}
	const stuck = "res_stuck"
	var free []string
	for i := 0; len(free) < 5; i++ {
		if k := fmt.Sprint("res_", i); part(k) != part(stuck) {
			free = append(free, k)
		}
	}

	var (
		mu      sync.Mutex
		handled = map[string][]string{} // key → ids in order of success
		changed = make(chan struct{}, 1)
	)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Run(ctx, func(ctx context.Context, m bus.Message) error {
			if m.ID == stuck+"_00" {
				once.Do(func() { close(started) })
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			mu.Lock()
			handled[m.Key] = append(handled[m.Key], m.ID)
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	publish := func(key string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m := bus.Message{ID: fmt.Sprintf("%s_%02d", key, i), Key: key, Type: "t", Payload: []byte(`{}`)}
			if _, err := b.Publish(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	waitHandled := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	publish(stuck, 0, 1)
	wait("the stuck record's handler", started)
	publish(stuck, 1, 20) // more than maxQueued behind the stuck head
	select {
	case p := <-paused:
		if p != int32(part(stuck)) {
			t.Fatalf("paused partition %d, want the stuck key's %d", p, part(stuck))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stuck partition never paused")
	}
	publish(stuck, 20, 30) // fetched only after the resume
	for _, k := range free {
		publish(k, 0, 3)
	}
	waitHandled("the other partitions", func() bool {
		for _, k := range free {
			if len(handled[k]) < 3 {
				return false
			}
		}
		return true
	})
	close(release)
	waitHandled("the stuck partition after release", func() bool { return len(handled[stuck]) >= 30 })

	mu.Lock()
	defer mu.Unlock()
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("%s_%02d", stuck, i))
	}
	if !slices.Equal(handled[stuck], want) {
		t.Errorf("stuck key handled as %v, want %v", handled[stuck], want)
	}
}
