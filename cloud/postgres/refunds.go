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

// Operators' refunds: decided by parkgate_refund, then taken by the
// provider part by part, each part's provider id recorded as it comes.

// CreateRefund runs parkgate_refund, again when it lost a race the
// database detected.
func (db *DB) CreateRefund(ctx context.Context, p cloud.RefundParams) (cloud.RefundResult, error) {
	if !canonicalize(&p.ReservationID) {
		return cloud.RefundResult{Outcome: cloud.RefundNotFound}, nil
	}
	var key any
	if p.Key != "" {
		key = p.Key
	}
	var out cloud.RefundResult
	err := retry(ctx, func() error {
		var id pgtype.UUID
		var left pgtype.Int8
		err := db.Pool.QueryRow(ctx, `SELECT * FROM parkgate_refund($1, $2, $3, $4, $5)`,
			p.ID, p.ReservationID, p.Amount, key, p.RequestHash).Scan(&out.Outcome, &id, &out.ResponseBody, &left)
		if id.Valid {
			out.RefundID = uuid.UUID(id.Bytes).String()
		}
		out.Left = left.Int64
		return err
	})
	if err != nil {
		return cloud.RefundResult{}, fail("create refund", err)
	}
	return out, nil
}

// RefundParts returns a refund's parts in order, and its status.
func (db *DB) RefundParts(ctx context.Context, refundID string) ([]cloud.RefundPart, string, error) {
	var status string
	if err := db.Pool.QueryRow(ctx, `SELECT status FROM refunds WHERE id = $1`, refundID).Scan(&status); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, "", cloud.Errorf(cloud.ENotFound, "refund %q not found", refundID)
		}
		return nil, "", fail("refund", err)
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT part, payment_intent_id, amount, coalesce(provider_refund_id, '')
		  FROM refund_parts WHERE refund_id = $1 ORDER BY part`, refundID)
	if err != nil {
		return nil, "", fail("refund parts", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cloud.RefundPart])
	if err != nil {
		return nil, "", fail("refund parts", err)
	}
	return parts, status, nil
}

// FinishRefundPart records the provider's refund of a part.
func (db *DB) FinishRefundPart(ctx context.Context, refundID string, part int, providerRefundID string) error {
	_, err := db.Pool.Exec(ctx, `
		UPDATE refund_parts SET provider_refund_id = $3
		 WHERE refund_id = $1 AND part = $2 AND provider_refund_id IS NULL`, refundID, part, providerRefundID)
	if err != nil {
		return fail("finish refund part", err)
	}
	return nil
}

// SettleRefund ends a pending refund as succeeded or failed; a success
// raises its payment.refunded alert in the same statement, once (only a
// pending refund is settled).
func (db *DB) SettleRefund(ctx context.Context, refundID, status string) error {
	_, err := db.Pool.Exec(ctx, `
		WITH done AS (
		    UPDATE refunds f SET status = $2, updated_at = now()
		      FROM reservations r
		     WHERE f.id = $1 AND f.status = 'pending' AND r.id = f.reservation_id
		    RETURNING f.id, f.reservation_id, r.lot_id, f.amount, f.currency, f.status)
		SELECT parkgate_alert('payment.refunded', jsonb_build_object(
		           'reservation_id', reservation_id, 'lot_id', lot_id, 'amount', amount, 'currency', currency,
		           'refund_id', id, 'reason', 'operator'))
		  FROM done WHERE status = 'succeeded'`, refundID, status)
	if err != nil {
		return fail("settle refund", err)
	}
	return nil
}

// StoreRefundResponse keeps the first answer stored.
func (db *DB) StoreRefundResponse(ctx context.Context, refundID string, body []byte) ([]byte, error) {
	var kept []byte
	err := db.Pool.QueryRow(ctx, `
		UPDATE refunds SET response_body = coalesce(response_body, $2) WHERE id = $1
		RETURNING response_body`, refundID, body).Scan(&kept)
	if err != nil {
		return nil, fail("store refund response", err)
	}
	return kept, nil
}

// PendingOperatorRefunds claims refunds the provider has not taken yet:
// each one returned is touched, so it is not returned again (here or in
// another replica) for olderThan, whatever becomes of this attempt.
func (db *DB) PendingOperatorRefunds(ctx context.Context, olderThan time.Duration, limit int) ([]string, []string, error) {
	rows, err := db.Pool.Query(ctx, `
		UPDATE refunds SET updated_at = now()
		 WHERE id IN (SELECT id FROM refunds
		               WHERE status = 'pending' AND updated_at <= now() - $1::interval
		               ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING id::text, reservation_id::text`, olderThan, limit)
	if err != nil {
		return nil, nil, fail("pending operator refunds", err)
	}
	defer rows.Close()
	var ids, res []string
	for rows.Next() {
		var id, r string
		if err := rows.Scan(&id, &r); err != nil {
			return nil, nil, fail("pending operator refunds", err)
		}
		ids, res = append(ids, id), append(res, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fail("pending operator refunds", err)
	}
	return ids, res, nil
}
