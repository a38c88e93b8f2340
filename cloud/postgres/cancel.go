package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
)

// Cancel cancels a reservation in one round trip (see parkgate_cancel),
// running it again when it lost a race the database detected.
func (db *DB) Cancel(ctx context.Context, id string, at time.Time) (cloud.CancelOutcome, string, error) {
	if !canonicalize(&id) {
		return cloud.CancelNotFound, "", nil
	}
	var outcome string
	var lot pgtype.UUID
	err := retry(ctx, func() error {
		return db.Pool.QueryRow(ctx, `SELECT * FROM parkgate_cancel($1, $2)`, id, at).Scan(&outcome, &lot)
	})
	if err != nil {
		return "", "", fail("cancel reservation "+id, err)
	}
	var lotID string
	if lot.Valid {
		lotID = uuid.UUID(lot.Bytes).String()
	}
	return cloud.CancelOutcome(outcome), lotID, nil
}

// FinishRefund records that the provider took a cancellation's refund,
// with its payment.refunded alert in the same statement (once: only the
// pending refund is finished).
func (db *DB) FinishRefund(ctx context.Context, id, refundID string) error {
	_, err := db.Pool.Exec(ctx, `
		WITH done AS (
		    UPDATE reservations SET refund_status = 'succeeded', refund_id = coalesce(nullif($2, ''), refund_id),
		           updated_at = now()
		     WHERE id = $1 AND refund_status = 'pending'
		    RETURNING id, lot_id, refund_amount, currency, refund_id)
		SELECT parkgate_alert('payment.refunded', jsonb_build_object(
		           'reservation_id', id, 'lot_id', lot_id, 'amount', refund_amount, 'currency', currency,
		           'refund_id', refund_id, 'reason', 'cancellation'))
		  FROM done`, id, refundID)
	if err != nil {
		return fail("finish refund", err)
	}
	return nil
}

// PendingRefunds returns cancellations whose refund the provider has not
// yet taken, oldest first, but those it refused lately (DeferProviderWork).
func (db *DB) PendingRefunds(ctx context.Context, olderThan time.Duration, limit int) ([]string, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT r.id::text FROM reservations r
		 WHERE r.refund_status = 'pending' AND r.updated_at <= now() - $1::interval
		   AND NOT EXISTS (SELECT 1 FROM provider_retries p
		                    WHERE p.work = 'refund' AND p.reservation_id = r.id AND p.retry_at > now())
		 ORDER BY r.updated_at LIMIT $2`, olderThan, limit)
	if err != nil {
		return nil, fail("pending refunds", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fail("pending refunds", err)
	}
	return out, nil
}
