package kafkabus

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultMaxQueued is how many records a partition's worker may have
// waiting before fetching from that partition pauses. Pausing only under
// backlog keeps the usual path free of resume latency (a resumed partition
// waits for the broker's in-flight fetch) while a stuck partition can
// neither grow memory without bound nor hold up the others.
const defaultMaxQueued = 500

// commitTimeout bounds the final commit when Run stops.
const commitTimeout = 10 * time.Second

// Run joins the consumer group and hands records to h until ctx is done.
// Each assigned partition has its own worker, so partitions proceed
// independently and one partition's records are handled strictly in order.
// On return every partition's progress is committed and the group left.
func (b *Bus) Run(ctx context.Context, h bus.Handler) error {
	c := &consumer{b: b, h: h, ctx: ctx, parts: map[topicPartition]*partition{}}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(b.cfg.Brokers...),
		kgo.ConsumerGroup(b.cfg.Group),
		kgo.ConsumeTopics(b.cfg.Topic),
		// A new group starts at the oldest record: nothing published
		// before the first consumer ran may be skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Rebalance callbacks run only between polls, never while the
		// poll loop is handing records to workers, so a worker is never
		// fed a partition that has just been revoked.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	}, b.cfg.Opts...)
	opts = append(opts, b.cfg.ConsumerOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafkabus: consumer: %w", err)
	}
	c.cl = cl

	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			b.log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				c.dispatch(p)
			}
		})
		cl.AllowRebalance()
	}
	cl.AllowRebalance()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	c.stop(cctx, nil, true)
	// Leaving the group hands our partitions to the others at once rather
	// than after the session timeout.
	cl.Close()
	return nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// consumer is one Run: a group member and its partition workers.
type consumer struct {
	b   *Bus
	h   bus.Handler
	ctx context.Context // Run's; parent of the workers'
	cl  *kgo.Client

	mu    sync.Mutex
	parts map[topicPartition]*partition
}

// dispatch queues a polled partition's records for its worker, starting
// one if the partition is new to this member.
func (c *consumer) dispatch(p kgo.FetchTopicPartition) {
	k := topicPartition{p.Topic, p.Partition}
	c.mu.Lock()
	w := c.parts[k]
	if w == nil {
		ctx, cancel := context.WithCancel(c.ctx)
		w = &partition{c: c, tp: k, cancel: cancel, done: make(chan struct{}), more: make(chan struct{}, 1)}
		c.parts[k] = w
		go w.run(ctx)
	}
	c.mu.Unlock()
	w.push(p.Records)
}

// revoked stops the workers of partitions leaving this member and commits
// what they finished, so the next owner starts right after it.
func (c *consumer) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.stop(ctx, revoked, true)
}

// lost stops the workers of partitions already taken away (the session
// expired): a commit would be refused, and the new owner redelivers
// whatever was not committed.
func (c *consumer) lost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.stop(ctx, lost, false)
}

// stop stops the workers of the given partitions (all when nil), waits for
// their handlers to return, commits their progress if commit is set, and
// resumes fetching any they had paused, so that the partition is fetched
// again if it ever comes back to this member.
func (c *consumer) stop(ctx context.Context, which map[string][]int32, commit bool) {
	c.mu.Lock()
	var ws []*partition
	for k, w := range c.parts {
		if which == nil || contains(which[k.topic], k.partition) {
			ws = append(ws, w)
			delete(c.parts, k)
		}
	}
	c.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	for _, w := range ws {
		w.cancel()
	}
	var done []*kgo.Record
	resume := map[string][]int32{}
	for _, w := range ws {
		<-w.done
		if w.handled != nil && w.handled.Offset+1 > w.committed {
			done = append(done, w.handled)
		}
		resume[w.tp.topic] = append(resume[w.tp.topic], w.tp.partition)
	}
	if commit && len(done) > 0 {
		if err := c.cl.CommitRecords(ctx, done...); err != nil {
			c.b.log.Warn("commit on revoke failed; the next owner redelivers", "err", err)
		}
	}
	c.cl.ResumeFetchPartitions(resume)
}

func contains(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// partition is the worker of one assigned partition.
type partition struct {
	c      *consumer
	tp     topicPartition
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	more   chan struct{} // a token when records were queued

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool

	// Owned by run until done is closed, then by stop.
	handled   *kgo.Record // last record whose handler succeeded
	committed int64       // offset committed for this partition (next to read)
}

// push queues records, pausing the partition's fetches when the worker is
// behind. Pause and resume happen under mu so they cannot cross.
func (w *partition) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if len(w.queue) >= w.c.b.maxQueued && !w.paused {
		w.paused = true
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
		if w.c.b.onPause != nil {
			w.c.b.onPause(w.tp.partition)
		}
	}
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
}

// run handles queued records in offset order until ctx is done.
func (w *partition) run(ctx context.Context) {
	defer close(w.done)
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		if len(batch) == 0 && w.paused {
			w.paused = false
			w.c.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
		}
		w.mu.Unlock()
		if len(batch) == 0 {
			// Caught up: a natural point to checkpoint.
			w.commit(ctx)
			select {
			case <-ctx.Done():
				return
			case <-w.more:
			}
			continue
		}
		for _, r := range batch {
			if !w.handle(ctx, r) {
				return
			}
			w.handled = r
		}
	}
}

// handle runs the handler on r until it succeeds, waiting out the backoff
// after each failure; it never moves past r, which is what keeps the
// partition, and so each key, in order. It reports false when ctx ended
// first (the partition was revoked or Run is stopping).
func (w *partition) handle(ctx context.Context, r *kgo.Record) bool {
	m := message(r)
	for failures := 1; ; failures++ {
		err := call(ctx, w.c.h, m)
		if err == nil {
			mProcessed.Inc()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		mFailures.Inc()
		delay := w.c.b.cfg.Backoff.Delay(failures)
		w.c.b.log.Warn("handler failed; will retry", "event", m.ID, "type", m.Type, "key", m.Key,
			"partition", r.Partition, "offset", r.Offset, "attempt", failures, "retry_in", delay, "err", err)
		// Checkpoint the records before this one, in case this one takes
		// long enough for the partition to move elsewhere.
		w.commit(ctx)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// commit commits the partition up to the last handled record, if that is
// further than already committed.
func (w *partition) commit(ctx context.Context) {
	if w.handled == nil || w.handled.Offset+1 <= w.committed {
		return
	}
	if err := w.c.cl.CommitRecords(ctx, w.handled); err != nil {
		if ctx.Err() == nil {
			w.c.b.log.Warn("commit failed; will retry at the next checkpoint", "partition", w.tp.partition, "err", err)
		}
		return
	}
	w.committed = w.handled.Offset + 1
}

// call runs h, turning a panic into an error so that one bad event is
// retried with backoff instead of taking the process down.
func call(ctx context.Context, h bus.Handler, m bus.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
		}
	}()
	return h(ctx, m)
}
