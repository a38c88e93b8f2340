package postgres_test

import (
	"context"
	"github.com/parkgate/parkgate/protocol"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// edgeFixture is a fresh schema with helpers that write the rows the edge
// sync reads, as the booking service's functions would.
type edgeFixture struct {
	tb testing.TB
	db *postgres.DB
}

func setupEdge(tb testing.TB) *edgeFixture {
	tb.Helper()
	return &edgeFixture{tb: tb, db: pgtest.New(tb, 8).DB}
}

func (f *edgeFixture) exec(sql string, args ...any) {
	f.tb.Helper()
	if _, err := f.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		f.tb.Fatalf("exec %q: %v", sql, err)
	}
}

func (f *edgeFixture) queryInt(sql string, args ...any) int64 {
	f.tb.Helper()
	var n int64
	if err := f.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.tb.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func (f *edgeFixture) queryString(sql string, args ...any) string {
	f.tb.Helper()
	var s string
	if err := f.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		f.tb.Fatalf("query %q: %v", sql, err)
	}
	return s
}

// lot inserts a lot with one spot and returns its id.
func (f *edgeFixture) lot() string {
	f.tb.Helper()
	id := uuid.NewString()
	f.exec(`INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots)
	        VALUES ($1, 'Test lot', 52.5, 13.4, 'Europe/Berlin', 300, 'eur', 1)`, id)
	f.exec(`INSERT INTO spots (lot_id, label) VALUES ($1, 'A1')`, id)
	return id
}

// reservation inserts a reservation of the lot's spot with the given status
// in the i-th two-hour slot from now (so several never overlap).
func (f *edgeFixture) reservation(lot string, status protocol.Status, plate string, i int) string {
	f.tb.Helper()
	id := uuid.NewString()
	start := time.Now().Add(time.Duration(i) * 2 * time.Hour).Truncate(time.Second)
	f.exec(`INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
	        SELECT $1, $2, s.id, $3, $4, $5, $6, now() + interval '10 minutes', 300, 'eur' FROM spots s WHERE s.lot_id = $2`,
		id, lot, plate, start, start.Add(time.Hour), status)
	return id
}

// addChanges appends n changes to the lot's log in one transaction, as the
// booking service's functions do: the lot's seq bumped with the rows.
func (f *edgeFixture) addChanges(lot string, n int) {
	f.tb.Helper()
	f.exec(`
WITH l AS (UPDATE lots SET seq = seq + $2 WHERE id = $1 RETURNING seq)
INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
SELECT $1, l.seq - $2 + g, gen_random_uuid(), 'upsert', 'CONFIRMED', 'AB' || g,
       date_trunc('second', now()), date_trunc('second', now()) + interval '1 hour'
  FROM l, generate_series(1, $2::int) g`, lot, n)
}
