package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// BenchmarkExpireDue is the expiry worker ending b.N unpaid holds spread
// over 100 lots of 50 spots: ByLot is the store's ExpireDue (each lot's
// due holds in one transaction), OneByOne the worker before it, on the
// index it had (migration 001's, on hold_expires_at): the 200 oldest ids
// read, then a transaction of parkgate_change each, until none is left.
// Run with -benchtime=20000x: b.N is the holds.
func BenchmarkExpireDue(b *testing.B) {
	ways := []struct {
		name   string
		schema string // run on the schema first
		expire func(ctx context.Context, db *postgres.DB) (int, error)
	}{
		{"ByLot", "", func(ctx context.Context, db *postgres.DB) (int, error) {
			ended, err := db.ExpireDue(ctx)
			n := 0
			for _, k := range ended {
				n += k
			}
			return n, err
		}},
		{"OneByOne", `CREATE INDEX reservations_pending_hold_idx ON reservations (hold_expires_at) WHERE status = 'PENDING'`,
			func(ctx context.Context, db *postgres.DB) (int, error) {
				rows, err := db.Pool.Query(ctx, `SELECT id::text FROM reservations
				 WHERE status = 'PENDING' AND hold_expires_at <= now() ORDER BY hold_expires_at LIMIT 200`)
				if err != nil {
					return 0, err
				}
				ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return 0, err
				}
				n := 0
				for _, id := range ids {
					changed, _, err := db.Change(ctx, id, []cloud.Status{cloud.StatusPending}, cloud.StatusExpired, cloud.PaymentFields{})
					if err != nil {
						return n, err
					}
					if changed {
						n++
					}
				}
				return n, nil
			}},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			s := pgtest.New(b, 4)
			ctx := context.Background()
			if w.schema != "" {
				if _, err := s.DB.Pool.Exec(ctx, w.schema); err != nil {
					b.Fatal(err)
				}
			}
			spots := make([]string, 50)
			for i := range spots {
				spots[i] = fmt.Sprint("S", i)
			}
			for i := range 100 {
				eurLot(b, s, fmt.Sprint("lot ", i), spots...)
			}
			// b.N holds already due, in windows an hour apart per lot.
			if _, err := s.DB.Pool.Exec(ctx, `
				SELECT h.* FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM lots) l,
				     generate_series(0, $1::int / 100) g,
				     parkgate_hold(gen_random_uuid(), l.id, NULL, 'EXP' || g, now() + make_interval(hours => 2 + g),
				                   now() + make_interval(hours => 3 + g), interval '-1 second', 100, 'EUR',
				                   gen_random_uuid()::text, '\x01'::bytea, interval '1 minute', '\x00'::bytea) h
				 WHERE g * 100 + l.k < $1`, b.N); err != nil {
				b.Fatal(err)
			}
			if _, err := s.DB.Pool.Exec(ctx, `ANALYZE reservations`); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			total := 0
			for total < b.N {
				n, err := w.expire(ctx, s.DB)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatalf("ended %d of %d due holds, then none", total, b.N)
				}
				total += n
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "holds/s")
		})
	}
}
