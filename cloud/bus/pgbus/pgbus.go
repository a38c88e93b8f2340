package pgbus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/bus/internal/busmetrics"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

var (
	_ bus.Publisher = (*Bus)(nil)
	_ bus.Consumer  = (*Bus)(nil)
)

var (
	mPublished     = busmetrics.Published.WithLabelValues(busmetrics.Postgres)
	mDuplicates    = busmetrics.Duplicates.WithLabelValues(busmetrics.Postgres)
	mPublishErrors = busmetrics.PublishErrors.WithLabelValues(busmetrics.Postgres)
	mPublishSecs   = busmetrics.PublishSeconds.WithLabelValues(busmetrics.Postgres)
	mProcessed     = busmetrics.Processed.WithLabelValues(busmetrics.Postgres)
	mFailures      = busmetrics.Failures.WithLabelValues(busmetrics.Postgres)
	mQueueDepth    = busmetrics.QueueDepth.WithLabelValues(busmetrics.Postgres)
)

// Options tune a Bus; the zero value of each field takes its default.
type Options struct {
	// Workers is how many events one Run handles at once (default 4).
	Workers int
	// Lease is how long a claim lasts without renewal (default 30s). A
	// worker renews it every Lease/3 while its handler runs, so Lease only
	// bounds how long the event of a dead worker waits for redelivery.
	Lease time.Duration
	// PollInterval is how often an idle worker looks for work without
	// being notified (default 1s): the backstop for lost notifications,
	// and what picks up events whose backoff or lease has run out.
	PollInterval time.Duration
	// Backoff is the wait after a handler error (default bus.DefaultBackoff).
	Backoff bus.Backoff
	// Logger receives handler failures and connection trouble
	// (default slog.Default()).
	Logger *slog.Logger
}

// Bus is the Postgres payment-event bus. It is both Publisher and Consumer;
// every Run is one more consumer of the same table.
type Bus struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger

	// Waking consumers after a publish (see wake): the wake channels of
	// this Bus's Runs, and the state of the coalescing NOTIFY.
	mu        sync.Mutex
	wakes     map[chan struct{}]struct{}
	notifying atomic.Bool // a notifier goroutine is running
	pending   atomic.Bool // an event was committed since the last NOTIFY was sent

	// Concurrent publishes share INSERTs, and handled events share the
	// statement that marks them done (group.go).
	publishes *groupcommit.Group[bus.Message, bool]
	dones     *groupcommit.Group[claimed, bool]

	// onListen, when set (by tests), is called with the backend pid of each
	// new listening connection once LISTEN has been issued.
	onListen func(pid uint32)
}

// New returns a bus on pool, whose schema must have payment_events and parkgate_claim_events
// (postgres.DB.Migrate does).
func New(pool *pgxpool.Pool, opts Options) *Bus {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Backoff == (bus.Backoff{}) {
		opts.Backoff = bus.DefaultBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Bus{pool: pool, opts: opts, log: opts.Logger.With("component", "pgbus"), wakes: map[chan struct{}]struct{}{},
		publishes: newPublishGroup(pool), dones: newDoneGroup(pool)}
}

// Publish records m, once per ID, and wakes the consumers; it returns once
// the row is committed. duplicate reports an ID recorded before (whose first
// copy is kept). Concurrent publishes share statements and commits (see
// group.go), so a flood of webhooks costs Postgres far fewer transactions
// than events.
func (b *Bus) Publish(ctx context.Context, m bus.Message) (duplicate bool, err error) {
	if err := m.Validate(); err != nil {
		return false, err
	}
	start := time.Now()
	inserted, err := b.publishOne(ctx, m)
	mPublishSecs.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		mPublishErrors.Inc()
		return false, fmt.Errorf("pgbus: publish %s: %w", m.ID, err)
	case !inserted:
		mDuplicates.Inc()
		return true, nil
	}
	mPublished.Inc()
	b.wake()
	return false, nil
}

// wake tells consumers that an event was committed: this process's Runs
// directly, every replica's through a NOTIFY. At most one NOTIFY is in
// flight per Bus, and the publishes made meanwhile share the next one, so
// under load there are far fewer notifications than events and Publish
// never waits for one. Should the process die before its NOTIFY, the
// consumers' poll finds the event.
func (b *Bus) wake() {
	b.mu.Lock()
	for w := range b.wakes {
		signal(w)
	}
	b.mu.Unlock()
	b.pending.Store(true)
	if b.notifying.CompareAndSwap(false, true) {
		go b.notify()
	}
}

// notify sends NOTIFYs until no publish is waiting for one.
func (b *Bus) notify() {
	for {
		for b.pending.Swap(false) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := b.pool.Exec(ctx, notifySQL); err != nil {
				// Debug: consumers poll anyway, and this can race the
				// pool's closing at shutdown.
				b.log.Debug("notify failed; consumers will poll", "err", err)
			}
			cancel()
		}
		b.notifying.Store(false)
		// A publish that set pending after the last Swap saw notifying
		// still set and left the NOTIFY to us: take it on, unless a new
		// notifier already has.
		if !b.pending.Load() || !b.notifying.CompareAndSwap(false, true) {
			return
		}
	}
}

// Run handles events with Options.Workers workers until ctx is done, then
// waits for handlers in flight and returns nil. An event whose handler is
// interrupted by shutdown is given back at once for another consumer. Run
// fails at the start only if the payment_events table is missing (the
// migrations have not run); an unreachable database is waited out.
func (b *Bus) Run(ctx context.Context, h bus.Handler) error {
	if _, err := b.pool.Exec(ctx, checkSQL); sqlState(err) == codeUndefinedTable {
		return fmt.Errorf("pgbus: %w (apply the migrations)", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One token wakes the dispatcher, which claims until it finds the
	// queue drained; any number of notifications while it is busy come to
	// the same thing, so one buffered token is enough.
	wake := make(chan struct{}, 1)
	b.mu.Lock()
	b.wakes[wake] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.wakes, wake)
		b.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { b.listen(ctx, wake) })
	wg.Go(func() { b.gaugeDepth(ctx) })
	b.dispatch(ctx, h, wake)
	wg.Wait()
	return nil
}

// Purge deletes events processed more than olderThan ago and returns how
// many. Unprocessed events are never purged. A purged ID is no longer
// recognised as a duplicate, so keep events longer than Stripe retries a
// webhook (three days) — thirty days, as long as Stripe keeps events, is a
// comfortable choice.
func (b *Bus) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	const batch = 5000
	var total int64
	for {
		tag, err := b.pool.Exec(ctx, purgeSQL, olderThan.Microseconds(), batch)
		if err != nil {
			return total, fmt.Errorf("pgbus: purge: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			return total, nil
		}
	}
}

// gaugeDepth keeps the queue depth gauge current while Run lasts. Every
// replica reports the same table, so aggregate with max, not sum.
func (b *Bus) gaugeDepth(ctx context.Context) {
	for {
		var n int64
		if err := b.pool.QueryRow(ctx, depthSQL).Scan(&n); err == nil {
			mQueueDepth.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(depthEvery):
		}
	}
}
