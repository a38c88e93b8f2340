package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestOpenService: the service's pool is made whole without being asked
// for a connection, every connection warmed by a paid booking it rolls
// back, so none is left behind; and it serves a schema its warm-up cannot
// run on (migrations not yet applied), cold.
func TestOpenService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := pgtest.New(t, 2)
	db, err := postgres.OpenService(ctx, s.URL, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	deadline := time.Now().Add(20 * time.Second)
	for db.Pool.Stat().IdleConns() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("pool not made whole: %d connections, %d idle", db.Pool.Stat().TotalConns(), db.Pool.Stat().IdleConns())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := db.Pool.Stat().AcquireCount(); n > 1 { // Open's ping
		t.Errorf("%d acquires before anyone asked", n)
	}
	// Each came warmed: the hold is already prepared on its session.
	var conns []*pgxpool.Conn
	for range 3 {
		c, err := db.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		var prepared bool
		// The text as a parameter: this query, prepared too, must not match itself.
		if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement = $1)`,
			postgres.HoldSQL).Scan(&prepared); err != nil {
			t.Fatal(err)
		}
		if !prepared {
			t.Errorf("connection %d was not warmed: no hold prepared on it", i)
		}
		c.Release()
	}
	// A burst finds every connection made: it waits for one to be free,
	// never for one to be started.
	opened := db.Pool.Stat().NewConnsCount()
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			if _, err := db.Pool.Exec(ctx, "SELECT pg_sleep(0.02)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := db.Pool.Stat().NewConnsCount() - opened; n != 0 {
		t.Errorf("a burst opened %d connections", n)
	}

	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = postgres.Warm(ctx, c.Conn())
	c.Release()
	if err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	for _, table := range []string{"lots", "spots", "reservations", "idempotency_keys", "outbox", "silent_changes", "alert_events"} {
		var n int
		if err := s.DB.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("the warm-ups left %d rows in %s", n, table)
		}
	}

	empty := pgtest.Empty(t, 1)
	cold, err := postgres.OpenService(ctx, empty.Alone(t), 2)
	if err != nil {
		t.Fatalf("a schema without migrations: %v", err)
	}
	t.Cleanup(cold.Close)
	c, err = cold.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.Warm(ctx, c.Conn()); err == nil {
		t.Error("warm-up on a schema without tables succeeded")
	}
	c.Release()
	if err := cold.Ping(ctx); err != nil {
		t.Errorf("cold pool: %v", err)
	}
}
