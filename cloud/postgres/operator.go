package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// The operator's questions and changes of a lot: its settings, who is
// inside, its reservations and its gates' events, page by page.

// UpdateLot changes the settings given, in one statement: the UPDATE takes
// the lot's row lock, which every hold takes first (parkgate_hold), so a
// hold either committed before the change or sees it.
func (db *DB) UpdateLot(ctx context.Context, id string, u cloud.LotUpdate) (cloud.Lot, error) {
	if !canonicalize(&id) {
		return cloud.Lot{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", id)
	}
	var rate, currency, free, grace, count, window any
	if u.HourlyRate != nil {
		rate, currency = u.HourlyRate.Amount, u.HourlyRate.Currency
	}
	if u.FreeCancellation != nil {
		free = time.Duration(*u.FreeCancellation)
	}
	if u.ExitGrace != nil {
		grace = time.Duration(*u.ExitGrace)
	}
	if u.DeniedAlertCount != nil {
		count = *u.DeniedAlertCount
	}
	if u.DeniedAlertWindow != nil {
		window = time.Duration(*u.DeniedAlertWindow)
	}
	l, err := scanLot(db.Pool.QueryRow(ctx, `
		UPDATE lots SET name = coalesce($2, name),
		       hourly_rate_amount = coalesce($3, hourly_rate_amount), currency = coalesce($4, currency),
		       closed = coalesce($5, closed),
		       free_cancellation = coalesce($6, free_cancellation), exit_grace = coalesce($7, exit_grace),
		       denied_alert_count = coalesce($8, denied_alert_count),
		       denied_alert_window = coalesce($9, denied_alert_window)
		 WHERE id = $1
		RETURNING `+lotColumns,
		id, u.Name, rate, currency, u.Closed, free, grace, count, window))
	if errors.Is(err, pgx.ErrNoRows) {
		return cloud.Lot{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", id)
	}
	if err != nil {
		return cloud.Lot{}, fail("update lot", err)
	}
	return l, nil
}

// Occupancy reads the lot's counter, kept in step with its presence rows
// by the gate-event ingest.
func (db *DB) Occupancy(ctx context.Context, lotID string) (cloud.Occupancy, error) {
	if !canonicalize(&lotID) {
		return cloud.Occupancy{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	var o cloud.Occupancy
	err := db.Pool.QueryRow(ctx, `
		SELECT coalesce(o.inside, 0), coalesce(o.updated_at, l.created_at)
		  FROM lots l LEFT JOIN lot_occupancy o ON o.lot_id = l.id
		 WHERE l.id = $1`, lotID).Scan(&o.Inside, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return cloud.Occupancy{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	if err != nil {
		return cloud.Occupancy{}, fail("occupancy", err)
	}
	o.UpdatedAt = o.UpdatedAt.UTC()
	return o, nil
}

// Presence changes, each one statement in the gate event's transaction
// after sqlInsertGateEvent, which holds the lot's lot_occupancy row: the
// counter moves only when a presence row was added or removed, so a plate
// entering twice counts once and an exit of a plate not inside counts
// nothing.
const (
	sqlPresenceEnter = `
WITH added AS (
	INSERT INTO lot_presence (lot_id, plate, entered_at) VALUES ($1, $2, $3)
	ON CONFLICT (lot_id, plate) DO NOTHING RETURNING 1)
UPDATE lot_occupancy SET inside = inside + 1, updated_at = now()
 WHERE lot_id = $1 AND EXISTS (SELECT 1 FROM added)`
	sqlPresenceLeave = `
WITH gone AS (DELETE FROM lot_presence WHERE lot_id = $1 AND plate = $2 RETURNING 1)
UPDATE lot_occupancy SET inside = inside - 1, updated_at = now()
 WHERE lot_id = $1 AND EXISTS (SELECT 1 FROM gone)`
)

// presenceChange is the statement an event applies to the lot's presence,
// and the plate it applies it for; "" when it changes nothing. An entry or
// exit counts when the barrier opened (a decision, or the manual override);
// an edge's reset of a plate takes it out, as the operator's does.
func presenceChange(e *protocol.GateEvent, kind string) (sql, plate string) {
	if e.Plate == "" {
		return "", ""
	}
	plate = e.Plate
	if p, err := protocol.NormalizePlate(e.Plate); err == nil {
		plate = p
	}
	switch {
	case kind == protocol.KindReset:
		return sqlPresenceLeave, plate
	case e.Decision != protocol.DecisionOpen || (kind != protocol.KindDecision && kind != protocol.KindOverride):
		return "", ""
	case e.Direction == protocol.DirectionEntry:
		return sqlPresenceEnter, plate
	case e.Direction == protocol.DirectionExit:
		return sqlPresenceLeave, plate
	}
	return "", ""
}

// LotReservations pages a lot's reservations newest first by (created_at,
// id), from the cursor on: a range scan of reservations_lot_created_idx,
// the other filters applied to the rows it reads. Only the conditions asked
// for are in the statement, so each shape gets a plan of its own rather
// than one generic plan with "$n IS NULL OR" in it, which no index serves.
func (db *DB) LotReservations(ctx context.Context, f cloud.ReservationFilter) ([]cloud.Reservation, bool, error) {
	q, args := lotReservationsQuery(f)
	rows, err := db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fail("lot reservations", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.Reservation, error) { return scanReservation(r) })
	if err != nil {
		return nil, false, fail("lot reservations", err)
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

func lotReservationsQuery(f cloud.ReservationFilter) (string, []any) {
	args := []any{f.LotID}
	var b strings.Builder
	b.WriteString(`SELECT ` + reservationColumns + ` FROM reservations r JOIN spots s ON s.id = r.spot_id
		WHERE r.lot_id = $1 AND r.extends_id IS NULL`)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Status != "" {
		b.WriteString(` AND r.status = ` + arg(string(f.Status)))
	}
	if f.Plate != "" {
		b.WriteString(` AND r.plate = ` + arg(f.Plate))
	}
	if !f.From.IsZero() {
		b.WriteString(` AND r.ends_at > ` + arg(f.From))
	}
	if !f.To.IsZero() {
		b.WriteString(` AND r.starts_at < ` + arg(f.To))
	}
	if f.After != nil {
		b.WriteString(` AND (r.created_at, r.id) < (` + arg(f.After.CreatedAt) + `, ` + arg(f.After.ID) + `::uuid)`)
	}
	b.WriteString(` ORDER BY r.created_at DESC, r.id DESC LIMIT ` + arg(f.Limit+1))
	return b.String(), args
}

// LotGateEvents reads the lot's events after seq after, by
// gate_events_lot_seq_idx.
func (db *DB) LotGateEvents(ctx context.Context, lotID string, after int64, limit int) ([]cloud.StoredGateEvent, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT event_id, lot_id::text, gate_id, direction, kind, plate, confidence, decision, reason,
		       coalesce(reservation_id, ''), fuzzy, overstay_minutes, offline, occurred_at, decided_in_us,
		       coalesce(note, ''), seq, received_at
		  FROM gate_events WHERE lot_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, lotID, after, limit)
	if err != nil {
		return nil, fail("lot gate events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.StoredGateEvent, error) {
		var e cloud.StoredGateEvent
		g := &e.GateEvent
		err := r.Scan(&g.EventID, &g.LotID, &g.GateID, &g.Direction, &g.Kind, &g.Plate, &g.Confidence, &g.Decision,
			&g.Reason, &g.ReservationID, &g.Fuzzy, &g.OverstayMinutes, &g.Offline, &g.OccurredAt, &g.DecidedInUs,
			&g.Note, &e.Seq, &e.ReceivedAt)
		g.V = protocol.Version
		g.OccurredAt, e.ReceivedAt = g.OccurredAt.UTC(), e.ReceivedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fail("lot gate events", err)
	}
	return out, nil
}
