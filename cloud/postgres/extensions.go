package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
)

// HoldExtension holds an extension's interval in one round trip (see
// parkgate_hold_extension), run again when it lost a race the database
// detected: the exclusion constraint refusing the insert is such a race,
// and the run after it finds the spot taken.
func (db *DB) HoldExtension(ctx context.Context, p cloud.ExtensionParams) (cloud.ExtensionHold, error) {
	if !canonicalize(&p.ParentID) {
		return cloud.ExtensionHold{Outcome: cloud.ExtensionNotFound}, nil
	}
	var out cloud.ExtensionHold
	err := retry(ctx, func() error {
		var exp, created pgtype.Timestamptz
		err := db.Pool.QueryRow(ctx, `SELECT * FROM parkgate_hold_extension($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			p.ID, p.ParentID, p.From, p.EndsAt, p.HoldTTL, p.Price.Amount, p.Key, p.RequestHash, p.Lease, p.Now,
		).Scan(&out.Outcome, &exp, &created)
		out.HoldExpiresAt, out.CreatedAt = exp.Time.UTC(), created.Time.UTC()
		return err
	})
	if err != nil {
		return cloud.ExtensionHold{}, fail("hold extension", err)
	}
	return out, nil
}

// Extend merges a paid extension (see parkgate_extend).
func (db *DB) Extend(ctx context.Context, extensionID, paymentIntentID string, at time.Time) (string, string, error) {
	if !canonicalize(&extensionID) {
		return cloud.ExtensionNotFound, "", nil
	}
	var outcome string
	var lot pgtype.UUID
	err := retry(ctx, func() error {
		return db.Pool.QueryRow(ctx, `SELECT * FROM parkgate_extend($1, $2, $3)`, extensionID, paymentIntentID, at).Scan(&outcome, &lot)
	})
	if err != nil {
		return "", "", fail("extend", err)
	}
	lotID := ""
	if lot.Valid {
		lotID = uuid.UUID(lot.Bytes).String()
	}
	return outcome, lotID, nil
}

// PaidExtensions returns the merged extensions of a reservation with their
// payment intents.
func (db *DB) PaidExtensions(ctx context.Context, reservationID string) ([]cloud.PaidExtension, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT id::text, coalesce(payment_intent_id, '') FROM reservations
		 WHERE extends_id = $1 AND status = 'COMPLETED' AND price_amount > 0 ORDER BY created_at`, reservationID)
	if err != nil {
		return nil, fail("paid extensions", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cloud.PaidExtension])
	if err != nil {
		return nil, fail("paid extensions", err)
	}
	return out, nil
}
