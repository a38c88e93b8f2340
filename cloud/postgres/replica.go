package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenReplica returns a store on a read replica (DATABASE_READ_URL) for
// the reads cloud.LotReader allows. Its sessions are read-only
// (default_transaction_read_only), so a write sent to it by mistake fails
// loudly even when the URL names a primary. It does not connect until first
// used: a replica that is down when parkcloud starts must not keep it from
// serving, since searches fall back to the primary meanwhile (see
// httpapi.Server.Reads), and the pool connects once the replica is back.
func OpenReplica(ctx context.Context, url string, maxConns int32) (*DB, error) {
	cfg, err := poolConfig(url, maxConns)
	if err != nil {
		return nil, fmt.Errorf("read replica: %w", err)
	}
	cfg.MinConns = 0
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database read pool: %w", err)
	}
	return New(pool), nil
}
