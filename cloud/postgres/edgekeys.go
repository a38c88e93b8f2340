package postgres

import (
	"context"
	"crypto/ed25519"

	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud"
)

var _ cloud.EdgeKeys = (*DB)(nil)

// RegisterEdgeKey implements cloud.EdgeKeys.
func (db *DB) RegisterEdgeKey(ctx context.Context, lotID string, key ed25519.PublicKey) (bool, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return false, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	if len(key) != ed25519.PublicKeySize {
		return false, cloud.FieldError("public_key", "public_key must be %d bytes", ed25519.PublicKeySize)
	}
	// One statement tells the three cases apart: inserted, there already,
	// no such lot.
	var created, known bool
	err := db.Pool.QueryRow(ctx, `
		WITH lot AS (SELECT id FROM lots WHERE id = $1),
		ins AS (
			INSERT INTO edge_keys (lot_id, public_key) SELECT id, $2 FROM lot
			ON CONFLICT (lot_id, public_key) DO NOTHING
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM lot)`,
		lot, []byte(key)).Scan(&created, &known)
	if err != nil {
		return false, fail("register edge key", err)
	}
	if !known {
		return false, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return created, nil
}

// EdgeKeys implements cloud.EdgeKeys. One query answers both "which keys"
// and "is there such a lot": the lot row joined to its keys.
func (db *DB) EdgeKeys(ctx context.Context, lotID string) ([]ed25519.PublicKey, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return nil, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT k.public_key FROM lots l LEFT JOIN edge_keys k ON k.lot_id = l.id
		WHERE l.id = $1 ORDER BY k.created_at, k.public_key`, lot)
	if err != nil {
		return nil, fail("read edge keys", err)
	}
	found := false
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ed25519.PublicKey, error) {
		found = true
		var b []byte
		err := r.Scan(&b)
		return ed25519.PublicKey(b), err
	})
	if err != nil {
		return nil, fail("read edge keys", err)
	}
	if !found {
		return nil, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	// A lot without keys is one row of NULL.
	out := keys[:0]
	for _, k := range keys {
		if k != nil {
			out = append(out, k)
		}
	}
	return out, nil
}
