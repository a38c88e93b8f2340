package patroni_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/internal/testkit/patroni"
)

// TestKillPromotesStandby: a row committed on the primary is on the
// standby Patroni promotes once the primary's node is killed, and the
// multi-host URL reaches the new primary for writes.
func TestKillPromotesStandby(t *testing.T) {
	c := patroni.Start(t, patroni.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	old, err := c.WaitLeader(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	leader, err := c.WaitLeader(ctx, old.Name)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Logs())
	}
	t.Logf("%s promoted %v after %s was killed", leader.Name, time.Since(killed).Round(time.Millisecond), old.Name)
	conn, err = pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows on the new primary, want 2 (the one committed before the kill and one after)", n)
	}
}
