package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestReservationSpotIsOfItsLot: a reservation names its lot and its spot,
// and the database refuses a spot of another lot (migration 024), which the
// lot's availability scan would not see. A missing lot or spot is refused
// as before the key was one.
func TestReservationSpotIsOfItsLot(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	a, b := f.lot(), f.lot()
	spotB := f.queryInt(`SELECT id FROM spots WHERE lot_id = $1`, b)
	start := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	insert := func(lot string, spot int64) error {
		_, err := f.db.Pool.Exec(context.Background(),
			`INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
			 VALUES ($1, $2, $3, 'SL1', $4, $5, 'CONFIRMED', now(), 300, 'eur')`,
			uuid.NewString(), lot, spot, start, start.Add(time.Hour))
		return err
	}
	for _, tt := range []struct {
		name string
		lot  string
		spot int64
	}{
		{"another lot's spot", a, spotB},
		{"no such lot", uuid.NewString(), spotB},
		{"no such spot", a, spotB + 1000},
	} {
		var pe *pgconn.PgError
		if err := insert(tt.lot, tt.spot); !errors.As(err, &pe) || pe.Code != "23503" {
			t.Errorf("%s: %v, want a foreign key violation (23503)", tt.name, err)
		}
	}
	if err := insert(b, spotB); err != nil {
		t.Errorf("the lot's own spot: %v", err)
	}
	if n := f.queryInt(`SELECT count(*) FROM reservations`); n != 1 {
		t.Errorf("%d reservations, want 1", n)
	}
}
