package pgbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parkgate/parkgate/cloud/bus"
)

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
		record   func() (bool, error)
	)
	switch {
	case herr == nil:
		what = "done"
		record = func() (bool, error) { return b.dones.Do(fctx, c) }
	case ctx.Err() != nil:
		what = "release"
		record = func() (bool, error) {
			return b.giveBack(fctx, c, 0, "released: consumer stopped: "+herr.Error())
		}
	default:
		what = "retry"
		mFailures.Inc()
		delay := b.opts.Backoff.Delay(int(c.attempts))
		b.log.Warn("handler failed; will retry", "event", c.msg.ID, "type", c.msg.Type,
			"key", c.msg.Key, "attempt", c.attempts, "retry_in", delay, "err", herr)
		record = func() (bool, error) { return b.giveBack(fctx, c, delay, herr.Error()) }
	}
	// A handler that failed because the database went away usually finishes
	// while it is still away. Recording the outcome once and giving up left
	// the event leased until the lease ran out (30 s by default): a payment
	// confirmed that long after a one-second restart, and a driver who paid
	// meanwhile turned away at the gate. So the outcome is retried, briefly
	// and often, until the database answers or fctx ends.
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		if recorded, err = record(); err == nil || fctx.Err() != nil {
			break
		}
		select {
		case <-fctx.Done():
		case <-time.After(pause):
		}
	}
	if recorded && what == "done" {
		mProcessed.Inc()
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
