package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/parkgate/parkgate/cloud"
	"time"

	"github.com/jackc/pgx/v5"
)

// The audit reads: whole tables as plain rows, for the simulator's checks
// after a run (sim/stack). They read everything at once, so they are for
// test and simulation schemas, never for a service path.

// AuditReservation is a reservation row as stored.
type AuditReservation struct {
	ID              string
	LotID           string
	SpotID          int64
	Plate           string
	StartsAt        time.Time
	EndsAt          time.Time
	Status          cloud.Status
	HoldExpiresAt   time.Time
	SessionID       string
	PaymentIntentID string
	RefundID        string
	CreatedAt       time.Time
	// ExtendsID is, on an extension's own row, the reservation it extends
	// ("" on a booking): with the change log's windows it traces an
	// extension from its hold to the change that moved the booking's end.
	ExtendsID string
}

// AuditChange is an outbox row: one change in its lot's sequence, with the
// window it gave the edges (an extension merged shows as a change of its
// booking with the later EndsAt).
type AuditChange struct {
	LotID string
	Seq   int64
	// Silent is 0 for a change of the lot's log; for a change no edge
	// heard of (silent_changes, migration 021, or a PENDING hold's place on
	// its row, migration 027) it is its number in silent_changes' sequence,
	// and Seq the lot's seq when it was made: a lot's history is in (Seq,
	// Silent) order.
	Silent        int64
	ReservationID string
	Status        cloud.Status
	CreatedAt     time.Time
	Op            string // upsert or delete; "" for a silent change
	StartsAt      time.Time
	EndsAt        time.Time
}

// AuditGateEvent is a gate_events row.
type AuditGateEvent struct {
	EventID       string
	LotID         string
	GateID        string
	Direction     string
	Kind          string
	Plate         string
	Decision      string
	Reason        string
	ReservationID string
	Offline       bool
	OccurredAt    time.Time
	ReceivedAt    time.Time
	DecidedInUs   int64
	Note          string // an operator's reason for a remote open
}

// AllReservations returns every reservation, oldest first.
func (db *DB) AllReservations(ctx context.Context) ([]AuditReservation, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT id::text, lot_id::text, spot_id, plate, starts_at, ends_at, status, hold_expires_at,
		       coalesce(checkout_session_id, ''), coalesce(payment_intent_id, ''), coalesce(refund_id, ''), created_at,
		       coalesce(extends_id::text, '')
		  FROM reservations ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditReservation, error) {
		var r AuditReservation
		err := row.Scan(&r.ID, &r.LotID, &r.SpotID, &r.Plate, &r.StartsAt, &r.EndsAt, &r.Status, &r.HoldExpiresAt,
			&r.SessionID, &r.PaymentIntentID, &r.RefundID, &r.CreatedAt, &r.ExtendsID)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	return out, nil
}

// AllChanges returns every lot's reservation changes, the log's and the
// silent ones merged (lot_history, migration 027), in each lot's order
// (lot, Seq, Silent); the rows of other kinds (permits, presence resets)
// are left out.
func (db *DB) AllChanges(ctx context.Context) ([]AuditChange, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT lot_id::text, seq, silent, reservation_id::text, status, created_at, op, starts_at, ends_at
		  FROM lot_history
		 ORDER BY lot_id, seq, silent`)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditChange, error) {
		var c AuditChange
		err := row.Scan(&c.LotID, &c.Seq, &c.Silent, &c.ReservationID, &c.Status, &c.CreatedAt, &c.Op, &c.StartsAt, &c.EndsAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return out, nil
}

// AllGateEvents returns every gate event stored, in the order they occurred.
func (db *DB) AllGateEvents(ctx context.Context) ([]AuditGateEvent, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT event_id, lot_id::text, gate_id, direction, kind, plate, decision, reason, coalesce(reservation_id, ''),
		       offline, occurred_at, received_at, decided_in_us, coalesce(note, '')
		  FROM gate_events ORDER BY occurred_at, event_id`)
	if err != nil {
		return nil, fmt.Errorf("read gate events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditGateEvent, error) {
		var g AuditGateEvent
		err := row.Scan(&g.EventID, &g.LotID, &g.GateID, &g.Direction, &g.Kind, &g.Plate, &g.Decision, &g.Reason,
			&g.ReservationID, &g.Offline, &g.OccurredAt, &g.ReceivedAt, &g.DecidedInUs, &g.Note)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("read gate events: %w", err)
	}
	return out, nil
}

// GateEventIDs returns the ids of every gate event stored.
func (db *DB) GateEventIDs(ctx context.Context) (map[string]bool, error) {
	rows, err := db.Pool.Query(ctx, `SELECT event_id FROM gate_events`)
	if err != nil {
		return nil, fmt.Errorf("read gate events: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read gate events: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// LotSeqs returns each lot's last change-log sequence number.
func (db *DB) LotSeqs(ctx context.Context) (map[string]int64, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id::text, seq FROM lots`)
	if err != nil {
		return nil, fmt.Errorf("read lots: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, fmt.Errorf("read lots: %w", err)
		}
		out[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lots: %w", err)
	}
	return out, nil
}

// ReservationStatus returns one reservation's status as stored, or "" when
// there is no such reservation.
func (db *DB) ReservationStatus(ctx context.Context, id string) (cloud.Status, error) {
	var st cloud.Status
	err := db.Pool.QueryRow(ctx, `SELECT status FROM reservations WHERE id = $1`, id).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read reservation status: %w", err)
	}
	return st, nil
}

// AuditPermit is a permits row with the seqs of its changes.
type AuditPermit struct {
	ID         string
	LotID      string
	Plate      string
	ValidFrom  time.Time
	ValidUntil time.Time
	CreatedAt  time.Time
	RevokedAt  time.Time // zero while live
	Seq        int64     // its upsert's seq
	RevokeSeq  int64     // its revoke's seq, 0 while live
}

// AllPermits returns every permit ever made, revoked ones included.
func (db *DB) AllPermits(ctx context.Context) ([]AuditPermit, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT p.id::text, p.lot_id::text, p.plate, p.valid_from, p.valid_until, p.created_at,
		       coalesce(p.revoked_at, 'epoch'::timestamptz),
		       coalesce((SELECT min(o.seq) FROM outbox o WHERE o.lot_id = p.lot_id AND o.kind = 'permit'
		                  AND o.reservation_id = p.id AND o.op = 'upsert'), 0),
		       coalesce((SELECT min(o.seq) FROM outbox o WHERE o.lot_id = p.lot_id AND o.kind = 'permit'
		                  AND o.reservation_id = p.id AND o.op = 'delete'), 0)
		  FROM permits p ORDER BY p.created_at, p.id`)
	if err != nil {
		return nil, fmt.Errorf("read permits: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditPermit, error) {
		var p AuditPermit
		err := row.Scan(&p.ID, &p.LotID, &p.Plate, &p.ValidFrom, &p.ValidUntil, &p.CreatedAt, &p.RevokedAt, &p.Seq, &p.RevokeSeq)
		if p.RevokedAt.Equal(time.Unix(0, 0)) {
			p.RevokedAt = time.Time{}
		}
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read permits: %w", err)
	}
	return out, nil
}
