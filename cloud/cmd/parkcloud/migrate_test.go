package main

import (
	"context"
	"strings"
	"testing"

	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/internal/testkit/proc"
)

// TestOlderBinaryOnNewerSchema: parkcloud older than its database (a
// replica restarting mid-rollout, a rollback) migrates nothing, leaves the
// newer binary's functions as they are, says so, and serves: `migrate`
// exits 0 with a warning, `serve` answers.
func TestOlderBinaryOnNewerSchema(t *testing.T) {
	t.Parallel()
	schema := pgtest.New(t, 2)
	ctx := context.Background()
	if _, err := schema.DB.Pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_from_a_newer_binary.up.sql')`); err != nil {
		t.Fatal(err)
	}
	functions := func() string {
		t.Helper()
		var v string
		if err := schema.DB.Pool.QueryRow(ctx, `SELECT string_agg(xmin::text, ',' ORDER BY oid) FROM pg_proc
			WHERE pronamespace = current_schema()::regnamespace`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := functions()
	cmd, out := parkcloudCmd("migrate", schema.URL)
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "nothing migrated") || !strings.Contains(out.String(), "newer") {
		t.Errorf("parkcloud migrate on a newer database: %v\n%s", err, out)
	}

	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	serveParkcloud(t, schema.URL, addr, "PARKGATE_ADMIN_TOKEN=older-binary")
	if functions() != before {
		t.Error("an older parkcloud re-applied its functions over the newer database's")
	}
}
