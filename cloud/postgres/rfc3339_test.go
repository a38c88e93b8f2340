package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestRFC3339AsTheAPI: parkgate_rfc3339, which writes the times in alert
// data, spells an instant as the API's JSON does (Go's RFC 3339 with the
// fraction's trailing zeros dropped), so a receiver comparing an alert's
// ends_at with the reservation's sees the same string; it wrote
// "…T22:00:00.000000Z" against the API's "…T22:00:00Z".
func TestRFC3339AsTheAPI(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t, 2).DB
	for _, at := range []time.Time{
		time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 5, 22, 0, 0, 500_000_000, time.UTC),
		time.Date(2026, 12, 5, 22, 0, 7, 120_000, time.UTC),
		time.Date(2026, 12, 5, 22, 0, 10, 123_456_000, time.UTC),
		time.Date(2026, 12, 5, 23, 30, 0, 0, time.FixedZone("CET", 3600)),
	} {
		var got string
		if err := db.Pool.QueryRow(context.Background(), `SELECT parkgate_rfc3339($1)`, at).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := at.UTC().Format(time.RFC3339Nano); got != want {
			t.Errorf("parkgate_rfc3339(%v) = %q, want %q", at, got, want)
		}
	}
}
