package pgserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/internal/testkit/pgserver"
)

// TestRestartKeepsData: a row committed before a restart is there after
// it, on the same URL, and btree_gist is installed.
func TestRestartKeepsData(t *testing.T) {
	s := pgserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec := func(sql string) {
		t.Helper()
		c, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE TABLE t (r tstzrange, EXCLUDE USING gist (r WITH &&)); INSERT INTO t VALUES (tstzrange(now(), now() + interval '1 hour'))`)
	c, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	// The connection from before the restart is gone, as a client's is.
	if err := c.Ping(ctx); err == nil {
		t.Error("a connection survived the restart")
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c2, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	var n int
	if err := c2.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart and crash: %d rows, %v; want 1", n, err)
	}
}
