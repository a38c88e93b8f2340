package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
)

// The idempotency keys of POST /v1/reservations, read and kept here apart
// from the hold: parkgate_hold claims a key in the hold's own transaction,
// FinishHold stores its answer; these read, take over, forget and purge.

// IdempotencyKey returns a stored key, or ok false when there is none.
func (db *DB) IdempotencyKey(ctx context.Context, key string) (rec cloud.KeyRecord, ok bool, err error) {
	var rid pgtype.UUID
	var status pgtype.Int4
	err = db.Pool.QueryRow(ctx, `
		SELECT key, request_hash, reservation_id, response_status, response_body, coalesce(access_token, '')
		  FROM idempotency_keys WHERE key = $1 AND expires_at > now()`, key,
	).Scan(&rec.Key, &rec.RequestHash, &rid, &status, &rec.ResponseBody, &rec.AccessToken)
	if errors.Is(err, pgx.ErrNoRows) {
		return cloud.KeyRecord{}, false, nil
	}
	if err != nil {
		return cloud.KeyRecord{}, false, fail("get idempotency key", err)
	}
	if rid.Valid {
		rec.ReservationID = uuid.UUID(rid.Bytes).String()
	}
	rec.ResponseStatus = int(status.Int32)
	return rec, true, nil
}

// KnownKeys reports, for each key, whether it is stored (done or in
// flight): one indexed read for a batch of keys. The full-lot fast path
// asks it for every driver a full lot turns away, to tell a retry of a
// request that got in from a newcomer; in a surge that is most requests.
func (db *DB) KnownKeys(ctx context.Context, keys []string) ([]bool, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT key FROM idempotency_keys WHERE key = ANY($1) AND expires_at > now()`, keys)
	if err != nil {
		return nil, fail("known idempotency keys", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fail("known idempotency keys", err)
	}
	known := make(map[string]bool, len(found))
	for _, k := range found {
		known[k] = true
	}
	out := make([]bool, len(keys))
	for i, k := range keys {
		out[i] = known[k]
	}
	return out, nil
}

// TakeOverKey claims an in-flight key whose lease has run out (its first
// caller died or hung) for another lease. It reports false when the key is
// done, still leased, or gone.
func (db *DB) TakeOverKey(ctx context.Context, key string, lease time.Duration) (bool, error) {
	tag, err := db.Pool.Exec(ctx, `
		UPDATE idempotency_keys SET locked_until = now() + $2
		 WHERE key = $1 AND response_status IS NULL AND locked_until < now()`, key, lease)
	if err != nil {
		return false, fail("take over idempotency key", err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteKey forgets a key, so that a retry starts afresh.
func (db *DB) DeleteKey(ctx context.Context, key string) error {
	if _, err := db.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE key = $1`, key); err != nil {
		return fail("delete idempotency key", err)
	}
	return nil
}

// PurgeKeys deletes idempotency keys past their 24 hours.
func (db *DB) PurgeKeys(ctx context.Context) (int64, error) {
	tag, err := db.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= now()`)
	if err != nil {
		return 0, fail("purge idempotency keys", err)
	}
	return tag.RowsAffected(), nil
}
