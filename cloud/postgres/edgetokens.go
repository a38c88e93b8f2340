package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/parkgate/parkgate/cloud"
)

var _ cloud.EdgeTokens = (*DB)(nil)

// edgeTokenLen is the length of an edge token: the prefix and 32 random
// bytes in unpadded URL-safe base64.
var edgeTokenLen = len(cloud.EdgeTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// hashToken is what is stored of a token: a leaked table hands out no
// credentials, and a lookup by hash takes no time that depends on how many
// of the token's bytes match.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateEdgeToken implements cloud.EdgeTokens; only the token's hash is
// stored.
func (db *DB) CreateEdgeToken(ctx context.Context, lotID string) (string, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return "", cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fail("create edge token", err)
	}
	token := cloud.EdgeTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	tag, err := db.Pool.Exec(ctx,
		`INSERT INTO edge_tokens (token_hash, lot_id) SELECT $1, l.id FROM lots l WHERE l.id = $2`,
		hashToken(token), lot)
	if err != nil {
		return "", fail("create edge token", err)
	}
	if tag.RowsAffected() == 0 {
		return "", cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return token, nil
}

// VerifyEdgeToken implements cloud.EdgeTokens. The lookup is by the token's
// SHA-256, so how long it takes says nothing about the token's bytes.
func (db *DB) VerifyEdgeToken(ctx context.Context, lotID, token string) (bool, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok || len(token) != edgeTokenLen || !strings.HasPrefix(token, cloud.EdgeTokenPrefix) {
		return false, nil
	}
	var valid bool
	err := db.Pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM edge_tokens WHERE token_hash = $1 AND lot_id = $2 AND revoked_at IS NULL)`,
		hashToken(token), lot).Scan(&valid)
	if err != nil {
		return false, fail("verify edge token", err)
	}
	return valid, nil
}

// RevokeEdgeToken implements cloud.EdgeTokens.
func (db *DB) RevokeEdgeToken(ctx context.Context, lotID, token string) error {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	tag, err := db.Pool.Exec(ctx,
		`UPDATE edge_tokens SET revoked_at = now() WHERE token_hash = $1 AND lot_id = $2 AND revoked_at IS NULL`,
		hashToken(token), lot)
	if err != nil {
		return fail("revoke edge token", err)
	}
	if tag.RowsAffected() == 0 {
		return cloud.Errorf(cloud.ENotFound, "no live edge token of lot %q matches", lotID)
	}
	return nil
}
