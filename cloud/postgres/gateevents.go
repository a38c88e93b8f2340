package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// Gate events and gate status: what the edges report, as the relay's ingest
// stores it.

var _ cloud.GateEventStore = (*DB)(nil)

// sqlInsertGateEvent stores an event once, numbered in its lot's order of
// storage: the number comes from the lot's lot_occupancy row, whose lock
// the event's transaction then holds until it commits, so a lot's events
// become visible in the order of their numbers (a reader paging "after
// seq" never passes one that commits later). A redelivery takes a number
// and stores nothing: a gap, which paging does not mind.
const sqlInsertGateEvent = `
WITH n AS (
	INSERT INTO lot_occupancy AS o (lot_id, event_seq) VALUES ($2, 1)
	ON CONFLICT (lot_id) DO UPDATE SET event_seq = o.event_seq + 1
	RETURNING o.event_seq)
INSERT INTO gate_events (event_id, lot_id, gate_id, direction, kind, plate, confidence, decision, reason,
                         reservation_id, fuzzy, overstay_minutes, offline, occurred_at, decided_in_us, note, seq)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, nullif($16, ''), n.event_seq FROM n
ON CONFLICT (event_id) DO NOTHING`

// sqlTransition moves a reservation of the given lot (an edge may only move
// its own lot's reservations, whatever id it reports) through
// parkgate_change, which locks the lot, checks the status and appends the
// outbox row. No row back: not this lot's, or not in a from status.
const sqlTransition = `
SELECT c.seq
  FROM reservations r
 CROSS JOIN LATERAL parkgate_change(r.id, $3::text[], $4) c
 WHERE r.id = $1 AND r.lot_id = $2`

// sqlGateSeen notes, for GET /v1/lots/{id}/edges, that a gate was heard
// from. Only a gate with a status row: its state comes from the status.
const sqlGateSeen = `
UPDATE gate_status SET last_seen = now()
 WHERE lot_id = $1 AND gate_id = $2 AND (last_seen IS NULL OR last_seen < now() - interval '1 second')`

// IngestGateEvent implements cloud.GateEventStore. An event without a kind
// is stored as a decision, the only kind older edges send.
func (db *DB) IngestGateEvent(ctx context.Context, e *protocol.GateEvent, t cloud.Transition) (cloud.GateEventResult, error) {
	var out cloud.GateEventResult
	kind := e.Kind
	if kind == "" {
		kind = protocol.KindDecision
	}
	var resID *string
	if e.ReservationID != "" {
		resID = &e.ReservationID
	}
	from := make([]string, len(t.From))
	for i, s := range t.From {
		from[i] = string(s)
	}
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		out = cloud.GateEventResult{}
		tag, err := tx.Exec(ctx, sqlInsertGateEvent,
			e.EventID, e.LotID, e.GateID, e.Direction, kind, e.Plate, e.Confidence, e.Decision, e.Reason,
			resID, e.Fuzzy, e.OverstayMinutes, e.Offline, e.OccurredAt, e.DecidedInUs, e.Note)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			out.Duplicate = true
			return nil
		}
		if sql, plate := presenceChange(e, kind); sql != "" {
			args := []any{e.LotID, plate}
			if sql == sqlPresenceEnter {
				args = append(args, e.OccurredAt)
			}
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return err
			}
		}
		// Hearing from the gate; at most once a second per gate, so a busy
		// gate's events do not all queue on its status row.
		if _, err := tx.Exec(ctx, sqlGateSeen, e.LotID, e.GateID); err != nil {
			return err
		}
		if e.Decision == protocol.DecisionDeny {
			if _, err := tx.Exec(ctx, `SELECT parkgate_gate_denied($1, $2, $3, $4)`, e.LotID, e.GateID, e.OccurredAt, e.Reason); err != nil {
				return err
			}
		}
		if t.To == "" {
			return nil
		}
		rows, err := tx.Query(ctx, sqlTransition, e.ReservationID, e.LotID, from, string(t.To))
		if err != nil {
			return err
		}
		// A silent change (migration 021) has no seq; a gate's moves
		// are never silent, but a NULL must not fail the event.
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.Int8])
		if err != nil {
			return err
		}
		if len(seqs) > 0 {
			out.Moved, out.Seq = t.To, seqs[0].Int64
		}
		if t.To == cloud.StatusCompleted {
			// An exit: late past the lot's grace, it owes an overstay.
			if err := markOverstay(ctx, tx, e.ReservationID, e.LotID, e.OccurredAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return cloud.GateEventResult{}, gateError(err, e.LotID, "ingest event "+e.EventID)
	}
	return out, nil
}

// RecordGateStatus implements cloud.GateEventStore through
// parkgate_gate_status, which orders statuses, treats a live last will as
// news, and raises edge.online / edge.offline on transitions.
func (db *DB) RecordGateStatus(ctx context.Context, lotID, gateID string, st protocol.GateStatus, live bool, received time.Time) (string, error) {
	var seq *int64
	if st.SyncSeq != 0 {
		seq = &st.SyncSeq
	}
	var moved pgtype.Text
	err := db.Pool.QueryRow(ctx, `SELECT parkgate_gate_status($1, $2, $3, $4, $5, $6, $7)`,
		lotID, gateID, st.State, seq, st.At, live, received).Scan(&moved)
	if err != nil {
		return "", gateError(err, lotID, "store gate status")
	}
	return moved.String, nil
}

// gateError turns a failed write of what a gate reported into the cloud's
// codes, so the ingest decides retries without reading SQLSTATEs: not_found
// for an unknown lot, unavailable for a failure that may pass on another
// try, and any other error (internal) for a refusal no retry can change.
func gateError(err error, lotID, what string) error {
	if sqlState(err) == codeForeignKeyViolation {
		return cloud.Errorf(cloud.ENotFound, "%s: lot %q not found", what, lotID)
	}
	if transient(err) {
		return cloud.Errorf(cloud.EUnavailable, "%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// transient reports whether running the same statements again may succeed.
// Without an answer from the server (network, pool, timeout) it may; with
// one, only when the refusal was about the moment rather than the request:
// a deadlock (40P01), a serialization failure (40001), a lost connection, a
// database starting up or shutting down, a full server, a lock not
// available.
func transient(err error) bool {
	code := sqlState(err)
	if code == "" {
		return true
	}
	switch code[:2] {
	case "08", // connection exception
		"40", // transaction rollback: deadlock, serialization failure
		"53", // insufficient resources: too many connections, out of memory
		"57", // operator intervention: shutdown, query cancelled
		"55": // object not in prerequisite state: lock not available
		return true
	}
	return false
}
