package pgbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// claimed is an event leased to this consumer; attempts fences the lease.
type claimed struct {
	msg      bus.Message
	attempts int32
}

// claim leases up to n of the oldest claimable events, in one round trip.
// The claim commits durably (one flush for the whole batch): its attempts
// number fences every later update of the lease, and a claim lost in a
// crash could hand the same number out twice. It runs to the end even when
// ctx is cancelled, so that what it leased comes back to the caller (who
// gives it back) instead of waiting out a lease that no one holds.
func (b *Bus) claim(ctx context.Context, n int) ([]claimed, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rows, err := b.pool.Query(cctx, claimSQL, b.opts.Lease.Microseconds(), n)
	if err != nil {
		return nil, fmt.Errorf("pgbus: claim: %w", err)
	}
	defer rows.Close()
	var out []claimed
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.msg.ID, &c.msg.Key, &c.msg.Type, &c.msg.Payload, &c.msg.CreatedAt, &c.attempts); err != nil {
			rows.Close()
			for _, c := range out {
				b.finish(ctx, c, context.Canceled) // give back what was read
			}
			return nil, fmt.Errorf("pgbus: claim: read: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgbus: claim: %w", err)
	}
	return out, nil
}

// exec runs one bookkeeping statement without waiting for the WAL flush
// (see asyncSQL).
func (b *Bus) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	batch := &pgx.Batch{}
	batch.Queue(asyncSQL)
	qq := batch.Queue(sql, args...)
	var tag pgconn.CommandTag
	qq.Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	err := b.pool.SendBatch(ctx, batch).Close()
	return tag, err
}

// dispatch claims events and hands each to its own handler goroutine, at
// most Options.Workers at once, until ctx is done; then it waits for the
// handlers in flight. One claim asks for as many events as there are free
// workers, so under load one round trip feeds many handlers instead of
// every worker racing the others for the head of the queue. When a claim
// comes back short the queue is drained: it sleeps until woken by a
// publish, or the poll interval (jittered, so that replicas spread out)
// has passed.
func (b *Bus) dispatch(ctx context.Context, h bus.Handler, wake chan struct{}) {
	slots := make(chan struct{}, b.opts.Workers)
	var handlers sync.WaitGroup
	defer handlers.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// Wait for one free worker, then take every other free one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
	take:
		for free < b.opts.Workers {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break take
			}
		}
		batch, err := b.claim(ctx, free)
		if ctx.Err() != nil {
			// Claimed as Run was stopping: give them back untouched.
			for _, c := range batch {
				b.finish(ctx, c, ctx.Err())
			}
			return
		}
		if err != nil {
			b.log.Warn("claim failed", "err", err)
		}
		for _, c := range batch {
			handlers.Go(func() {
				defer func() { <-slots }()
				b.handle(ctx, h, c)
				// The next event of this key was held back behind this
				// one, so the claim that just came back short may have
				// missed it: look again now, not at the next poll.
				signal(wake)
			})
		}
		for range free - len(batch) {
			<-slots
		}
		if len(batch) == free {
			continue // there may be more
		}
		timer.Reset(b.opts.PollInterval/2 + rand.N(b.opts.PollInterval/2+1))
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
	}
}

// handle runs h on a claimed event, renewing the lease meanwhile, and
// records the outcome.
func (b *Bus) handle(ctx context.Context, h bus.Handler, c claimed) {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost atomic.Bool
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		if !b.renew(ctx, c, stop) {
			lost.Store(true)
			cancel()
		}
	}()
	err := call(hctx, h, c.msg)
	close(stop)
	<-renewed // no renewal can land after the outcome below
	if lost.Load() {
		// Another worker has the event now; any outcome we recorded
		// would be fenced off anyway.
		return
	}
	b.finish(ctx, c, err)
}

// renew extends c's lease every Lease/3 until stop is closed, and reports
// false if the lease turns out to be lost (it ran out, say while the
// database was unreachable, and another worker claimed the event). Each
// renewal runs to its end rather than being cut off by stop or ctx: one cut
// off on the client could still commit on the server after the outcome,
// and lease again an event that was just given back.
func (b *Bus) renew(ctx context.Context, c claimed, stop <-chan struct{}) (held bool) {
	t := time.NewTicker(b.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return true
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.Lease/3)
		tag, err := b.exec(rctx, renewSQL, c.msg.ID, c.attempts, b.opts.Lease.Microseconds())
		cancel()
		switch {
		case err != nil:
			// Try again at the next tick; the lease has two more in hand.
			b.log.Warn("renew lease failed", "event", c.msg.ID, "err", err)
		case tag.RowsAffected() == 0:
			b.log.Warn("lease lost; handler cancelled", "event", c.msg.ID)
			return false
		}
	}
}

// finish records the outcome of a claim: done on success; given back at
// once when the consumer is stopping (not the event's fault); otherwise
// retried after the backoff, with the error kept for operators. It uses
// its own deadline, because ctx may be the reason the handler stopped.
func (b *Bus) finish(ctx context.Context, c claimed, herr error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var (
		recorded bool // false: the claim's lease was lost to another consumer
		err      error
		what     string
	)
	switch {
	case herr == nil:
		what = "done"
		if recorded, err = b.dones.Do(fctx, c); recorded {
			mProcessed.Inc()
		}
	case ctx.Err() != nil:
		what = "release"
		recorded, err = b.giveBack(fctx, c, 0, "released: consumer stopped: "+herr.Error())
	default:
		what = "retry"
		mFailures.Inc()
		delay := b.opts.Backoff.Delay(int(c.attempts))
		b.log.Warn("handler failed; will retry", "event", c.msg.ID, "type", c.msg.Type,
			"key", c.msg.Key, "attempt", c.attempts, "retry_in", delay, "err", herr)
		recorded, err = b.giveBack(fctx, c, delay, herr.Error())
	}
	switch {
	case err != nil:
		// The lease will run out and the event will be delivered again.
		b.log.Error("record outcome failed", "event", c.msg.ID, "outcome", what, "err", err)
	case !recorded:
		b.log.Warn("outcome not recorded: lease lost to another worker", "event", c.msg.ID, "outcome", what)
	}
}

// giveBack returns a claimed event to the queue, claimable after delay.
func (b *Bus) giveBack(ctx context.Context, c claimed, delay time.Duration, why string) (bool, error) {
	tag, err := b.exec(ctx, retrySQL, c.msg.ID, c.attempts, delay.Microseconds(), why)
	return tag.RowsAffected() == 1, err
}

// codeUndefinedTable is the SQLSTATE of a missing table.
const codeUndefinedTable = "42P01"

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
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

// listen keeps a dedicated connection LISTENing on Channel and turns each
// notification into a wake token, reconnecting with backoff when the
// connection drops. Workers poll meanwhile, so an outage here only slows
// pickup down to the poll interval.
func (b *Bus) listen(ctx context.Context, wake chan<- struct{}) {
	retry := bus.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for {
		listening, err := b.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if listening {
			failures = 0
		}
		failures++
		b.log.Warn("listen connection lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry.Delay(failures)):
		}
	}
}

// listenOnce runs one listening connection until it fails; listening
// reports whether it got as far as LISTEN.
func (b *Bus) listenOnce(ctx context.Context, wake chan<- struct{}) (listening bool, err error) {
	// Its own connection, not one of the pool's: it is held for as long as
	// Run lasts and must not shrink the pool the webhook publishes through.
	cfg := b.pool.Config().ConnConfig
	cfg.RuntimeParams["application_name"] = "parkgate-pgbus-listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if b.onListen != nil {
		b.onListen(conn.PgConn().PID())
	}
	// Notifications sent while no connection listened are lost: look once.
	signal(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		signal(wake)
	}
}

// signal hands out a wake token unless one is already waiting.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// depthEvery is how often a Run samples the queue depth gauge.
const depthEvery = 15 * time.Second

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
