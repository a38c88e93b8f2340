package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parkgate/parkgate/cloud"
)

// The provider work the payment provider refused, held back from its queue
// (migration 029). Each queue's read (SessionsToClose, PendingRefunds,
// DueOverstays) skips a reservation whose row here is not yet due.

// DeferProviderWork records one more refusal of work for reservationID: the
// first holds it back a minute, each next one twice as long as the one
// before, at most an hour. A refusal that comes two hours or more after the
// last one was due starts again at a minute: the row was not refused each
// time it came round (its work was done, an overstay's session paid, and
// this is a later one), so this is a first refusal. One that comes while
// the row is held back is another replica's answer to the same round (one
// replica leads the provider's work at a time, LeadProviderWork, but a
// pass whose lead was lost with its connection runs on beside the next
// leader's) and changes only last_error: counted, it would double the
// backoff once per replica. Each column below takes
// the same three cases: held back, a first refusal again, the next one.
func (db *DB) DeferProviderWork(ctx context.Context, work cloud.ProviderWork, reservationID, reason string) (time.Time, int, error) {
	var at time.Time
	var attempts int
	err := db.Pool.QueryRow(ctx, `
		INSERT INTO provider_retries AS p (work, reservation_id, attempts, retry_at, last_error)
		VALUES ($1, $2, 1, now() + interval '1 minute', $3)
		ON CONFLICT (work, reservation_id) DO UPDATE
		   SET attempts = CASE WHEN p.retry_at > now() THEN p.attempts
		                       WHEN p.retry_at < now() - interval '2 hours' THEN 1
		                       ELSE p.attempts + 1 END,
		       retry_at = CASE WHEN p.retry_at > now() THEN p.retry_at
		                       WHEN p.retry_at < now() - interval '2 hours' THEN now() + interval '1 minute'
		                       ELSE now() + least(interval '1 minute' * (2 ^ least(p.attempts, 6)), interval '1 hour') END,
		       first_refused = CASE WHEN p.retry_at < now() - interval '2 hours' THEN now() ELSE p.first_refused END,
		       last_error = EXCLUDED.last_error
		RETURNING retry_at, attempts`, string(work), reservationID, reason).Scan(&at, &attempts)
	if err != nil {
		return time.Time{}, 0, fail("defer provider work", err)
	}
	return at, attempts, nil
}

// PurgeProviderRetries deletes the refusals no refusal has followed for a
// day: a refused row comes round within the hour, so one untouched that
// long is done or gone from its queue.
func (db *DB) PurgeProviderRetries(ctx context.Context) (int64, error) {
	tag, err := db.Pool.Exec(ctx, `DELETE FROM provider_retries WHERE retry_at < now() - interval '1 day'`)
	if err != nil {
		return 0, fail("purge provider retries", err)
	}
	return tag.RowsAffected(), nil
}

// leadKey is the advisory lock of the provider's work, one per schema as
// Migrate's is: services in other schemas of the same database (tests,
// a staging copy) each have their own leader.
const leadKey = `hashtext('parkgate.provider_work.' || current_schema())`

// LeadProviderWork takes the provider work's session advisory lock, without
// waiting, on a connection of its own that keeps it until release. A
// replica that dies, or loses its connection to a restart or failover,
// loses the lock with the session, so the lead never outlives its holder.
func (db *DB) LeadProviderWork(ctx context.Context) (func(), bool, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, fail("lead provider work", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+leadKey+`)`).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fail("lead provider work", err)
	}
	if !ok {
		conn.Release()
		return func() {}, false, nil
	}
	return func() { unlockLead(conn) }, true, nil
}

// unlockLead gives the lead up and the connection back; one the unlock
// failed on is closed instead, ending its session and the lock with it,
// never handed to the pool still holding it.
func unlockLead(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var unlocked bool
	if err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock(`+leadKey+`)`).Scan(&unlocked); err != nil || !unlocked {
		_ = conn.Conn().Close(ctx)
	}
	conn.Release()
}
