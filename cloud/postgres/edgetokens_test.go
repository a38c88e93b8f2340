package postgres_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
)

func TestEdgeTokens(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()

	first, err := f.db.CreateEdgeToken(ctx, lot)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.db.CreateEdgeToken(ctx, lot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, cloud.EdgeTokenPrefix) || first == second {
		t.Fatalf("tokens %q %q", first, second)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(first, cloud.EdgeTokenPrefix)); err != nil || len(raw) != 32 {
		t.Fatalf("token body: %d bytes, %v", len(raw), err)
	}
	// Only the SHA-256 is kept.
	if n := f.queryInt(`SELECT count(*) FROM edge_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, first); n != 1 {
		t.Error("token not stored as its SHA-256")
	}

	verify := func(lot, token string) bool {
		t.Helper()
		ok, err := f.db.VerifyEdgeToken(ctx, lot, token)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, tt := range []struct {
		name, lot, token string
		want             bool
	}{
		{"First", lot, first, true},
		{"SecondAlongside", lot, second, true},
		{"WrongLot", other, first, false},
		{"Garbage", lot, "pgedge_nope", false},
		{"Empty", lot, "", false},
		{"AlteredByte", lot, first[:len(first)-1] + string(first[len(first)-1]^1), false},
		{"NotUUIDLot", "lot-1", first, false},
	} {
		if got := verify(tt.lot, tt.token); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}

	// Rotation: the old token is revoked once the new one is in place.
	if err := f.db.RevokeEdgeToken(ctx, lot, first); err != nil {
		t.Fatal(err)
	}
	if verify(lot, first) || !verify(lot, second) {
		t.Error("after revoking the first: first still valid or second not")
	}
	if err := f.db.RevokeEdgeToken(ctx, lot, first); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("revoke twice: %v", err)
	}
	if err := f.db.RevokeEdgeToken(ctx, other, second); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("revoke through another lot: %v", err)
	}
	if !verify(lot, second) {
		t.Error("another lot revoked the token")
	}

	if _, err := f.db.CreateEdgeToken(ctx, uuid.NewString()); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
	if _, err := f.db.CreateEdgeToken(ctx, "lot-1"); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("malformed lot: %v", err)
	}
}
