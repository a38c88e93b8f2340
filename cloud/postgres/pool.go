package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud"
)

// OpenService connects to url with the pool a long-running service keeps
// (parkcloud serve): maxConns connections, made at once in the background,
// each warmed before its first use, and kept.
//
// Open's pool grows on demand, and a request that finds it short waits for
// the connection it starts: a backend forked and authenticated (20 ms
// here), then on its first hold the backend's catalogs read and the
// functions compiled (20 ms more, where a warm hold takes 2). A pool grows
// when work piles up, which is in a surge, on cores already busy: in
// BenchmarkSurge, a surge that opened eleven connections held the other
// lots' holds up for as long as 370 ms. And pgxpool's defaults
// shrink an idle pool (30 minutes) and retire every connection hourly, all
// at once when they were made together, so a quiet night ends in the same
// stall. HikariCP's advice for the same reason: a fixed-size pool.
//
// So this pool is made whole at start, off the request path; it does not
// shrink when idle; the connections it retires after an hour go over a
// further 15 minutes, not together, and their replacements are made and
// warmed in the background (pgxpool's health check, half a second after a
// retirement). A pool_min_conns or pool_max_conn_lifetime_jitter above 0
// in url overrides that part of it.
func OpenService(ctx context.Context, url string, maxConns int32) (*DB, error) {
	cfg, err := poolConfig(url, maxConns)
	if err != nil {
		return nil, err
	}
	if cfg.MinConns == 0 {
		cfg.MinConns = cfg.MaxConns
	}
	if cfg.MaxConnLifetimeJitter == 0 {
		cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 4
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// A connection that cannot be warmed still works, cold; the warm-up
		// is not worth refusing it for (it fails before migrations ran).
		_ = warm(ctx, c)
		return nil
	}
	return openPool(ctx, cfg)
}

// warm runs on a new connection what a paid booking runs, in a
// transaction it rolls back: a lot of its own, a hold on it and its
// confirmation. The backend reads the catalogs of the tables a hold touches
// and compiles parkgate_hold and parkgate_confirm_holds, and pgx prepares
// the statements the store sends, with the store's own text, so the first
// request given this connection finds it as warm as any. Nothing is left
// behind but what a rollback leaves (a few sequence numbers, dead tuples).
func warm(ctx context.Context, c *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	lot, id := uuid.New(), uuid.New()
	if _, err := tx.Exec(ctx, `
		WITH l AS (INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots)
		           VALUES ($1, 'warm-up', 0, 0, 'UTC', 100, 'EUR', 1) RETURNING id)
		INSERT INTO spots (lot_id, label) SELECT id, 'W1' FROM l`, lot); err != nil {
		return fmt.Errorf("warm-up lot: %w", err)
	}
	start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	price := cloud.Money{Amount: 100, Currency: "EUR"}
	row := tx.QueryRow(ctx, holdSQL, holdArgs(&cloud.HoldParams{
		ID: id.String(), LotID: lot.String(), Plate: "WARM1", StartsAt: start, EndsAt: start.Add(time.Hour),
		HoldTTL: 10 * time.Minute, Price: price, Rate: price, Key: "warm-up-" + id.String(),
		RequestHash: []byte{0}, Lease: time.Minute, ConflictBody: []byte("{}"),
	})...)
	if h, err := scanHold(row); err != nil {
		return fmt.Errorf("warm-up hold: %w", err)
	} else if h.Outcome != "held" {
		return fmt.Errorf("warm-up hold: %s", h.Outcome)
	}
	tag, err := tx.Exec(ctx, confirmSQL, []string{id.String()}, []string{"pi_warm_up"}, []time.Time{time.Now()})
	if err != nil {
		return fmt.Errorf("warm-up confirmation: %w", err)
	}
	if n := tag.RowsAffected(); n != 1 {
		return fmt.Errorf("warm-up confirmation: %d rows", n)
	}
	return nil
}
