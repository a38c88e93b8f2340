package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud"
)

// Permits and presence resets: each write takes the lot's row lock and its
// next seq first, as every writer of a lot does (see parkgate_change), and
// commits with its change-log row, so the relay publishes it and catch-up
// serves it in the lot's one order.

var _ cloud.PermitStore = (*DB)(nil)

// nextSeq locks the lot row and takes its next seq; not_found for no lot.
func nextSeq(ctx context.Context, tx pgx.Tx, lotID string) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `UPDATE lots SET seq = seq + 1 WHERE id = $1 RETURNING seq`, lotID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return seq, err
}

const sqlAppendChange = `
INSERT INTO outbox (lot_id, seq, kind, reservation_id, op, status, plate, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, '', $6, $7, $8)`

// inTx runs f in a transaction, translating errors as the store does.
func (db *DB) inTx(ctx context.Context, what string, f func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, db.Pool, f)
	if cloud.ErrorCode(err) == cloud.ENotFound {
		return err
	}
	if err != nil {
		return fail(what, err)
	}
	return nil
}

// CreatePermit implements cloud.PermitStore.
func (db *DB) CreatePermit(ctx context.Context, p cloud.Permit) (cloud.Permit, int64, error) {
	lot, ok := canonicalUUID(p.LotID)
	if !ok {
		return cloud.Permit{}, 0, cloud.Errorf(cloud.ENotFound, "lot %q not found", p.LotID)
	}
	p.LotID = lot
	var seq int64
	err := db.inTx(ctx, "create permit", func(tx pgx.Tx) error {
		var err error
		if seq, err = nextSeq(ctx, tx, lot); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `
INSERT INTO permits (id, lot_id, plate, valid_from, valid_until, label)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
			p.ID, lot, p.Plate, p.ValidFrom, p.ValidUntil, p.Label).Scan(&p.CreatedAt); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlAppendChange, lot, seq, cloud.ChangePermit, p.ID, "upsert", p.Plate, p.ValidFrom, p.ValidUntil)
		return err
	})
	if err != nil {
		return cloud.Permit{}, 0, err
	}
	return p, seq, nil
}

// Permits implements cloud.PermitStore.
func (db *DB) Permits(ctx context.Context, lotID string, now time.Time) ([]cloud.Permit, error) {
	if _, err := db.Lot(ctx, lotID); err != nil {
		return nil, err
	}
	lot, _ := canonicalUUID(lotID)
	rows, err := db.Pool.Query(ctx, `
SELECT id::text, lot_id::text, plate, valid_from, valid_until, label, created_at
  FROM permits
 WHERE lot_id = $1 AND revoked_at IS NULL AND valid_until > $2
 ORDER BY valid_from, id`, lot, now)
	if err != nil {
		return nil, fail("list permits", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cloud.Permit, error) {
		var p cloud.Permit
		err := row.Scan(&p.ID, &p.LotID, &p.Plate, &p.ValidFrom, &p.ValidUntil, &p.Label, &p.CreatedAt)
		return p, err
	})
	if err != nil {
		return nil, fail("list permits", err)
	}
	return out, nil
}

// RevokePermit implements cloud.PermitStore. The lot's lock is taken before
// the permit's row, as by every writer of the lot; a permit not live is
// found out after it and the transaction rolled back, seq and all.
func (db *DB) RevokePermit(ctx context.Context, lotID, permitID string) (int64, error) {
	lot, ok := canonicalUUID(lotID)
	id, ok2 := canonicalUUID(permitID)
	if !ok || !ok2 {
		return 0, cloud.Errorf(cloud.ENotFound, "permit %q not found", permitID)
	}
	var seq int64
	err := db.inTx(ctx, "revoke permit", func(tx pgx.Tx) error {
		var err error
		if seq, err = nextSeq(ctx, tx, lot); err != nil {
			return err
		}
		var plate string
		var from, until time.Time
		err = tx.QueryRow(ctx, `
UPDATE permits SET revoked_at = now()
 WHERE id = $1 AND lot_id = $2 AND revoked_at IS NULL
RETURNING plate, valid_from, valid_until`, id, lot).Scan(&plate, &from, &until)
		if errors.Is(err, pgx.ErrNoRows) {
			return cloud.Errorf(cloud.ENotFound, "permit %q not found", permitID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlAppendChange, lot, seq, cloud.ChangePermit, id, "delete", plate, from, until)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// ResetPresence implements cloud.PermitStore. The issue time is the
// transaction's (now()), so it is the store's clock, one for every replica.
func (db *DB) ResetPresence(ctx context.Context, r cloud.PresenceReset) (cloud.PresenceReset, error) {
	lot, ok := canonicalUUID(r.LotID)
	if !ok {
		return r, cloud.Errorf(cloud.ENotFound, "lot %q not found", r.LotID)
	}
	r.LotID = lot
	err := db.inTx(ctx, "reset presence", func(tx pgx.Tx) error {
		// The cloud's own count of who is inside forgets the plate in the
		// same transaction, so the lot's occupancy agrees with its edges
		// once they apply the change. The counter row is locked before the
		// lot's sequence, in the order the gate-event ingest takes them.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM lot_occupancy WHERE lot_id = $1 FOR UPDATE`, lot); err != nil {
			return err
		}
		var err error
		if r.Seq, err = nextSeq(ctx, tx, lot); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `
INSERT INTO outbox (lot_id, seq, kind, reservation_id, op, status, plate, starts_at, ends_at)
VALUES ($1, $2, $3, $4, 'reset', '', $5, now(), now())
RETURNING starts_at`, lot, r.Seq, cloud.ChangeReset, r.ID, r.Plate).Scan(&r.IssuedAt); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlPresenceLeave, lot, r.Plate)
		return err
	})
	if err != nil {
		return r, err
	}
	return r, nil
}

// OpenGate implements cloud.PermitStore: the command in the lot's change
// log (columns as migration 020 says), issued at the transaction's clock.
func (db *DB) OpenGate(ctx context.Context, g cloud.GateOpen, validity time.Duration) (cloud.GateOpen, error) {
	lot, ok := canonicalUUID(g.LotID)
	if !ok {
		return g, cloud.Errorf(cloud.ENotFound, "lot %q not found", g.LotID)
	}
	g.LotID = lot
	err := db.inTx(ctx, "open gate", func(tx pgx.Tx) error {
		var err error
		if g.Seq, err = nextSeq(ctx, tx, lot); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
INSERT INTO outbox (lot_id, seq, kind, reservation_id, op, status, plate, starts_at, ends_at)
VALUES ($1, $2, $3, $4, 'open', $5, $6, now(), now() + $7::interval)
RETURNING starts_at, ends_at`, lot, g.Seq, cloud.ChangeGateOpen, g.ID, g.Reason, g.GateID, validity).Scan(&g.IssuedAt, &g.NotAfter)
	})
	if err != nil {
		return g, err
	}
	g.IssuedAt, g.NotAfter = g.IssuedAt.UTC(), g.NotAfter.UTC()
	return g, nil
}
