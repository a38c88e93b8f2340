package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/protocol"
)

// The database keeps its own copies of the status rules of package
// protocol: the functions write each change under the op OpFor gives, and
// the constraints and the hold's search treat exactly the Active statuses
// as holding a spot. These tests hold every copy to protocol, status by
// status.

// statusFixture is a schema with one lot of one spot.
type statusFixture struct {
	pool *pgxpool.Pool
	lot  string
	spot int64
	day0 time.Time
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	s := pgtest.New(t, 2)
	f := &statusFixture{pool: connect(t, s), lot: uuid.NewString(),
		day0: time.Now().Add(24 * time.Hour).Truncate(time.Hour)}
	ctx := context.Background()
	if _, err := f.pool.Exec(ctx, `INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots)
		VALUES ($1, 'L', 0, 0, 'UTC', 100, 'EUR', 1)`, f.lot); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.QueryRow(ctx, `INSERT INTO spots (lot_id, label) VALUES ($1, 'S1') RETURNING id`, f.lot).Scan(&f.spot); err != nil {
		t.Fatal(err)
	}
	return f
}

// window is the i-th hour-long window, none overlapping another.
func (f *statusFixture) window(i int) (time.Time, time.Time) {
	start := f.day0.Add(time.Duration(2*i) * time.Hour)
	return start, start.Add(time.Hour)
}

// hold calls parkgate_hold for the i-th window and returns its outcome.
func (f *statusFixture) hold(t *testing.T, id string, i int) string {
	t.Helper()
	start, end := f.window(i)
	var outcome string
	if err := f.pool.QueryRow(context.Background(), `SELECT outcome FROM parkgate_hold($1, $2, NULL, 'AB123C', $3, $4,
		interval '10 minutes', 300, 'EUR', NULL, NULL, NULL, NULL, NULL)`, id, f.lot, start, end).Scan(&outcome); err != nil {
		t.Fatalf("hold: %v", err)
	}
	return outcome
}

// insert writes a reservation of the spot in the i-th window directly.
func (f *statusFixture) insert(id string, i int, status protocol.Status) error {
	start, end := f.window(i)
	_, err := f.pool.Exec(context.Background(), `INSERT INTO reservations
		(id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
		VALUES ($1, $2, $3, 'AB123C', $4, $5, $6, now() + interval '10 minutes', 300, 'EUR')`,
		id, f.lot, f.spot, start, end, string(status))
	return err
}

func statusStrings() []string {
	var out []string
	for _, s := range protocol.Statuses() {
		out = append(out, string(s))
	}
	return out
}

// TestFunctionsWriteOpsAsProtocol: whichever function writes a change
// (parkgate_hold for a new or an overdue hold, parkgate_change to every
// status, parkgate_confirm_holds), its op in the change log is
// protocol.OpFor of its status: the edges open the gate for exactly the
// statuses protocol.Status.OpensGate names. And the log carries only what
// changes an edge: a change that neither opens the gate nor ends a
// reservation an edge has is silent (migration 021), and no silent change
// is one an edge needed.
func TestFunctionsWriteOpsAsProtocol(t *testing.T) {
	t.Parallel()
	f := newStatusFixture(t)
	ctx := context.Background()

	id := uuid.NewString()
	if got := f.hold(t, id, 0); got != "held" {
		t.Fatalf("hold: %s", got)
	}
	for _, s := range protocol.Statuses() {
		var got string
		if err := f.pool.QueryRow(ctx, `SELECT status FROM parkgate_change($1, $2, $3)`, id, statusStrings(), string(s)).Scan(&got); err != nil {
			t.Fatalf("change to %s: %v", s, err)
		}
	}

	confirmed := uuid.NewString()
	if got := f.hold(t, confirmed, 1); got != "held" {
		t.Fatalf("hold: %s", got)
	}
	var n int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM parkgate_confirm_holds(ARRAY[$1]::uuid[], ARRAY['pi_1'], ARRAY[NULL]::timestamptz[])`,
		confirmed).Scan(&n); err != nil || n != 1 {
		t.Fatalf("confirm holds: %d, %v", n, err)
	}

	overdue := uuid.NewString()
	if got := f.hold(t, overdue, 2); got != "held" {
		t.Fatalf("hold: %s", got)
	}
	if _, err := f.pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 minute' WHERE id = $1`, overdue); err != nil {
		t.Fatal(err)
	}
	if got := f.hold(t, uuid.NewString(), 2); got != "held" { // expires the overdue one
		t.Fatalf("hold over an overdue one: %s", got)
	}

	// The lot's history, the log and the silent changes merged in order
	// (lot_history keeps the log's reservation changes: none may be
	// logged as another kind and drop out of it).
	var other int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE lot_id = $1 AND kind <> ''`, f.lot).Scan(&other); err != nil || other != 0 {
		t.Errorf("%d changes logged as another kind (%v)", other, err)
	}
	rows, err := f.pool.Query(ctx, `
		SELECT seq, silent, reservation_id::text, op, status FROM lot_history WHERE lot_id = $1
		 ORDER BY seq, silent`, f.lot)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[protocol.Status]bool{}
	held := map[string]bool{} // reservations an edge has: last logged as an upsert
	for rows.Next() {
		var seq, silent int64
		var res, op, status string
		if err := rows.Scan(&seq, &silent, &res, &op, &status); err != nil {
			t.Fatal(err)
		}
		s := protocol.Status(status)
		seen[s] = true
		if silent != 0 {
			// Silent: only a change that leaves the edges as they were.
			if s.OpensGate() || held[res] {
				t.Errorf("change of %s to %s after seq %d is silent, but the edges must hear of it (held %t)", res, s, seq, held[res])
			}
			continue
		}
		if want := protocol.OpFor(s); op != string(want) {
			t.Errorf("change %d to %s logged as %q, protocol says %q", seq, s, op, want)
		}
		if !s.OpensGate() && !held[res] {
			t.Errorf("change %d deletes %s, which no edge has: it should be silent", seq, res)
		}
		held[res] = s.OpensGate()
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range protocol.Statuses() {
		if !seen[s] {
			t.Errorf("no change to %s was recorded", s)
		}
	}
}

// TestActiveAsProtocol: a reservation of any protocol status is stored; one
// holds its spot, against both the overlap constraint and parkgate_hold's
// search for a free spot, exactly when protocol.Status.Active says so.
func TestActiveAsProtocol(t *testing.T) {
	t.Parallel()
	f := newStatusFixture(t)
	for i, s := range protocol.Statuses() {
		t.Run(string(s), func(t *testing.T) {
			// A reservation of status s, then a direct overlapping insert.
			if err := f.insert(uuid.NewString(), 2*i, s); err != nil {
				t.Fatalf("store a %s reservation: %v", s, err)
			}
			err := f.insert(uuid.NewString(), 2*i, protocol.StatusPending)
			var pe *pgconn.PgError
			refused := errors.As(err, &pe) && pe.Code == "23P01"
			if err != nil && !refused {
				t.Fatal(err)
			}
			if refused != s.Active() {
				t.Errorf("overlapping insert refused %t, Active() %t", refused, s.Active())
			}

			// Another window: a reservation of status s, then a hold.
			if err := f.insert(uuid.NewString(), 2*i+1, s); err != nil {
				t.Fatalf("store a %s reservation: %v", s, err)
			}
			want := "held"
			if s.Active() {
				want = "no_availability"
			}
			if got := f.hold(t, uuid.NewString(), 2*i+1); got != want {
				t.Errorf("hold over a %s reservation: %s, want %s", s, got, want)
			}
		})
	}
	var pe *pgconn.PgError
	if err := f.insert(uuid.NewString(), 99, "BOOKED"); !errors.As(err, &pe) || pe.Code != "23514" {
		t.Errorf("a status protocol does not name was stored: %v", err)
	}
}
