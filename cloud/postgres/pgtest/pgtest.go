// Package pgtest gives each test its own Postgres schema with every migration
// applied, on the real server named by TEST_DATABASE_URL, so tests run in
// parallel without seeing each other's rows. The schema is dropped when the
// test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/postgres"
)

// DefaultURL is the database deploy/services.sh makes ready.
const DefaultURL = "postgres://parkgate:parkgate@127.0.0.1:5432/parkgate?sslmode=disable"

// URL returns TEST_DATABASE_URL or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Schema is one test's schema.
type Schema struct {
	Name string
	// URL connects to the schema (search_path set), for child processes.
	URL string
	DB  *postgres.DB
}

// Alone returns URL with the schema alone on the search path. URL adds
// public (where btree_gist lives), so a table the schema lacks resolves to
// public's, which has them all once anything migrated the database's
// default schema (parkcloud run with services.sh's DATABASE_URL). A test
// of what happens without a table must not find public's.
func (s *Schema) Alone(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	q := u.Query()
	q.Set("search_path", s.Name)
	u.RawQuery = q.Encode()
	return u.String()
}

// New creates a fresh schema, applies the migrations and returns a store on
// it, with a pool of at most maxConns connections (0 for pgx's default).
func New(t testing.TB, maxConns int32) *Schema {
	t.Helper()
	s := Empty(t, maxConns)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.DB.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

// Empty is New without the migrations: a schema with nothing in it, for
// tests of the migrations themselves.
func Empty(t testing.TB, maxConns int32) *Schema {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])

	schemaURL, err := postgres.CreateSchema(ctx, URL(), name)
	if err != nil {
		t.Fatalf("pgtest: %v (run deploy/services.sh)", err)
	}
	db, err := postgres.Open(ctx, schemaURL, maxConns)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := postgres.DropSchema(ctx, URL(), name); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return &Schema{Name: name, URL: schemaURL, DB: db}
}
