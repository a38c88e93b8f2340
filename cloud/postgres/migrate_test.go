package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestMigrateConcurrent starts several "replicas" migrating one schema at
// once: the advisory lock must make each migration apply exactly once.
func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 0)
	ctx := context.Background()
	if _, err := s.DB.Pool.Exec(ctx, `DROP TABLE schema_migrations; DROP FUNCTION parkgate_hold, parkgate_change; DROP TABLE IF EXISTS payment_events, relay_leases, edge_tokens, gate_events, gate_status; DROP TABLE outbox, idempotency_keys, reservations, spots, lots CASCADE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	applied := make(chan int, 100)
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vs, err := s.DB.Migrate(ctx)
			if err != nil {
				errs <- err
			}
			for _, v := range vs {
				applied <- v
			}
		}()
	}
	wg.Wait()
	close(applied)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for v := range applied {
		seen[v]++
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("migration %d applied %d times", v, n)
		}
	}
	if seen[1] != 1 {
		t.Errorf("migration 1 not applied: %v", seen)
	}
}
