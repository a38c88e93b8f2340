package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// Migrations change the schema and run once each; functions are the
// current text of every PL/pgSQL function, re-applied on every migrate.
//
//go:embed migration/*.sql functions/*.sql
var sqlFiles embed.FS

var _ cloud.Store = (*DB)(nil)

// DB is the Postgres store.
// Times that decide holds (expiry, leases) are the database's now(), one
// clock for every replica.
type DB struct {
	Pool *pgxpool.Pool

	confirms *groupcommit.Group[confirmReq, confirmRes]
	searches chan struct{} // turns at SearchLots; see LimitSearches
}

// DefaultSearchConcurrency is how many searches run in Postgres at once
// unless LimitSearches says otherwise: about the database's cores.
const DefaultSearchConcurrency = 4

// LimitSearches sets how many searches one replica runs in Postgres at once;
// call it before the store is used. A search is CPU work in the database
// (15 lots' availability each). Run sixteen at once and they time-slice the
// database's cores: the same throughput, but the unlucky ones wait three
// times the median. Queued in order here instead, each waits its turn and
// the tail closes up (16 clients, 2 cores: p99 24 -> 13-16 ms at about the
// same 1,740-2,130 searches/s). It is also a bulkhead: searches never hold
// more than n of the pool's connections, however many drivers search.
func (db *DB) LimitSearches(n int) {
	db.searches = make(chan struct{}, max(n, 1))
}

// Open connects to url (a libpq URL or DSN) and checks the connection. Its
// pool grows as it is used, up to maxConns, and shrinks when idle: the
// pool for tools and tests. A service opens OpenService's.
func Open(ctx context.Context, url string, maxConns int32) (*DB, error) {
	cfg, err := poolConfig(url, maxConns)
	if err != nil {
		return nil, err
	}
	return openPool(ctx, cfg)
}

// poolConfig parses url (a libpq URL or DSN) with the pool's size, maxConns
// (0 for pgx's default or the url's pool_max_conns).
func poolConfig(url string, maxConns int32) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	return cfg, nil
}

func openPool(ctx context.Context, cfg *pgxpool.Config) (*DB, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return New(pool), nil
}

// New wraps an existing pool.
func New(pool *pgxpool.Pool) *DB {
	db := &DB{Pool: pool}
	db.LimitSearches(DefaultSearchConcurrency)
	// One confirmation batch at a time: a batch locks the lots of all its
	// reservations, so a second writer would only wait for the first's
	// locks, and meanwhile the queue it could have carried grows. Alone,
	// each batch takes everything that queued during the one before.
	db.confirms = &groupcommit.Group[confirmReq, confirmRes]{Write: db.confirmHolds, MaxBatch: 64, MaxWriters: 1}
	return db
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Ping reports whether the database answers; /readyz uses it.
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(sqlFiles, "migration")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".up.sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: name must start with a number and _", name)
		}
		b, err := sqlFiles.ReadFile("migration/" + name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %q and %q share a number", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// function is one file of functions/: a CREATE OR REPLACE FUNCTION, the
// whole current text of the function the file is named for.
type function struct {
	name string
	sql  string
}

func loadFunctions() ([]function, error) {
	entries, err := fs.ReadDir(sqlFiles, "functions")
	if err != nil {
		return nil, err
	}
	var out []function // ReadDir sorts by name, so the order is fixed
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok {
			continue
		}
		b, err := sqlFiles.ReadFile("functions/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, function{name: name, sql: string(b)})
	}
	return out, nil
}

// Migrate brings the schema up to date, holding a session advisory lock
// (keyed by the schema, so test schemas do not wait on each other) so that
// replicas starting at once apply each migration exactly once. First the
// embedded migrations not yet applied, each in its own transaction; it
// returns their versions. Then every function of functions/, all in one
// transaction, whether or not anything changed: CREATE OR REPLACE makes that
// a no-op for an unchanged function, and a changed file takes effect with
// no migration to write.
//
// Functions come after the migrations because their text may use what the
// migrations make (a function's %ROWTYPE needs its table at creation), so no
// migration may call one or create a trigger on one: a trigger goes in its
// function's file (CREATE OR REPLACE TRIGGER), to be re-applied with it. A
// change CREATE OR REPLACE cannot make (another return type, fewer
// arguments) needs a migration that drops the old signature first.
//
// A binary older than the database (one replica restarting while a rollout
// is under way, or a rollback) changes nothing and returns ErrSchemaNewer:
// re-applying its functions would put their old text back under every
// replica, and an old signature beside the new one would make the old
// replicas' calls ambiguous. The functions stay the newer binary's, whose
// new arguments come with defaults, so the older binary's calls still
// resolve. So a change to a function that an older binary must not undo
// comes with a migration, if only one that drops the old signature or
// says why, which marks the database newer.
func (db *DB) Migrate(ctx context.Context) ([]int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	fns, err := loadFunctions()
	if err != nil {
		return nil, fmt.Errorf("load functions: %w", err)
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('parkgate.migrate.' || current_schema()))`); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('parkgate.migrate.' || current_schema()))`)
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, v := range vs {
		applied[v] = true
	}
	if newest, known := slices.Max(append(vs, 0)), ms[len(ms)-1].version; newest > known {
		return nil, fmt.Errorf("%w: the database is at migration %d, this binary knows up to %d; its functions are left as the newer binary made them",
			ErrSchemaNewer, newest, known)
	}
	var done []int
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate %s: %w", m.name, err)
		}
		done = append(done, m.version)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, f := range fns {
			if _, err := tx.Exec(ctx, f.sql); err != nil {
				return fmt.Errorf("function %s: %w", f.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return done, fmt.Errorf("migrate: %w", err)
	}
	return done, nil
}

// ErrSchemaNewer is Migrate's answer to a binary older than the database:
// nothing was changed, and the binary may serve (callers log it).
var ErrSchemaNewer = errors.New("database schema is newer than this binary")

// SQLSTATE codes the store reacts to.
const (
	codeExclusionViolation   = "23P01"
	codeDeadlock             = "40P01"
	codeSerializationFailure = "40001"
	codeForeignKeyViolation  = "23503"
	codeUniqueViolation      = "23505"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports whether a transaction failed only because of
// concurrency and may be run again as a whole: a deadlock, a serialization
// failure, or an exclusion conflict with a transaction that committed
// between our read and our write.
func retryable(err error) bool {
	switch sqlState(err) {
	case codeDeadlock, codeSerializationFailure, codeExclusionViolation:
		return true
	}
	return false
}

// fail wraps err with op and, when it says the database could not be
// reached, with cloud.ErrStoreUnavailable: the store speaks cloud codes, so
// callers never look at pgx errors to tell an outage from a fault.
func fail(op string, err error) error {
	if Unreachable(err) {
		return fmt.Errorf("%s: %w: %w", op, cloud.ErrStoreUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Unreachable reports whether err says the database could not be reached
// or went away mid-statement (a restart, a failover, a network cut), as
// opposed to a statement it refused. Callers answer such failures "try
// again" rather than "internal error": a hold whose commit may or may not
// have happened is settled by the client's retry with the same key.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true // whatever stopped the connect, the database was not there
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up or ran out of time: not an outage
	}
	var oe *net.OpError
	switch {
	case errors.As(err, &oe), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true
	}
	// Connection exceptions (08…), and the server shutting down or not yet
	// accepting connections (57P01–57P03).
	code := sqlState(err)
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}
