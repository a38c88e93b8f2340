package postgres_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
)

func edgeKey(seed byte) ed25519.PublicKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
}

func TestEdgeKeys(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()
	k1, k2 := edgeKey(1), edgeKey(2)

	if keys, err := f.db.EdgeKeys(ctx, lot); err != nil || len(keys) != 0 {
		t.Fatalf("fresh lot: %v, %v", keys, err)
	}
	for _, tt := range []struct {
		name    string
		key     ed25519.PublicKey
		created bool
	}{{"First", k1, true}, {"Again", k1, false}, {"Second", k2, true}} {
		created, err := f.db.RegisterEdgeKey(ctx, lot, tt.key)
		if err != nil || created != tt.created {
			t.Fatalf("%s: created %v, %v; want %v", tt.name, created, err, tt.created)
		}
	}
	keys, err := f.db.EdgeKeys(ctx, lot)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	seen := map[string]bool{string(keys[0]): true, string(keys[1]): true}
	if !seen[string(k1)] || !seen[string(k2)] {
		t.Fatalf("keys %x", keys)
	}
	if keys, _ := f.db.EdgeKeys(ctx, other); len(keys) != 0 {
		t.Fatalf("another lot sees %d keys", len(keys))
	}
	// The same key may serve two lots (an agent moved): each has its row.
	if created, err := f.db.RegisterEdgeKey(ctx, other, k1); err != nil || !created {
		t.Fatalf("same key on another lot: %v, %v", created, err)
	}

	t.Run("UnknownLot", func(t *testing.T) {
		for _, id := range []string{uuid.NewString(), "lot-1", ""} {
			if _, err := f.db.RegisterEdgeKey(ctx, id, k1); cloud.ErrorCode(err) != cloud.ENotFound {
				t.Errorf("lot %q: %v", id, err)
			}
			if keys, err := f.db.EdgeKeys(ctx, id); cloud.ErrorCode(err) != cloud.ENotFound || len(keys) != 0 {
				t.Errorf("lot %q keys: %v, %v", id, keys, err)
			}
		}
	})
	t.Run("BadKey", func(t *testing.T) {
		if _, err := f.db.RegisterEdgeKey(ctx, lot, k1[:31]); cloud.ErrorCode(err) != cloud.EInvalid {
			t.Fatalf("31-byte key: %v", err)
		}
	})
}
