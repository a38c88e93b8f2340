package guard_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

func TestResponses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SaveLoad", func(t *testing.T) {
		t.Parallel()
		g, b := setup(t, guard.Options{})
		want := guard.StoredResponse{
			RequestHash: []byte{0xde, 0xad, 0xbe, 0xef},
			Status:      201,
			Body:        []byte(`{"id":"r-1","status":"PENDING"}` + "\n\x00\xff"),
		}
		g.SaveResponse(ctx, "client-1:key-1", want)
		got, ok := g.LoadResponse(ctx, "client-1:key-1")
		if !ok {
			t.Fatal("stored response not found")
		}
		if got.Status != want.Status || !bytes.Equal(got.RequestHash, want.RequestHash) || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("loaded %+v, want %+v", got, want)
		}
		ttl := b.rdb.PTTL(ctx, b.ns+":idem:client-1:key-1").Val()
		if ttl < 24*time.Hour-time.Minute || ttl > 24*time.Hour {
			t.Fatalf("TTL %v, want 24h", ttl)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{})
		g.SaveResponse(ctx, "k", guard.StoredResponse{Status: 204})
		got, ok := g.LoadResponse(ctx, "k")
		if !ok || got.Status != 204 || len(got.RequestHash) != 0 || len(got.Body) != 0 {
			t.Fatalf("loaded %+v, %v", got, ok)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{})
		if _, ok := g.LoadResponse(ctx, "never-saved"); ok {
			t.Fatal("found a response never saved")
		}
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		g, b := setup(t, guard.Options{})
		for _, raw := range []string{"", "x", "\x01\x00", "\x01\x00\xc8\x05ab", "\x02\x00\xc8\x00"} {
			b.rdb.Set(ctx, b.ns+":idem:bad", raw, time.Minute)
			if r, ok := g.LoadResponse(ctx, "bad"); ok {
				t.Errorf("%q loaded as %+v: want a miss, so Postgres answers", raw, r)
			}
		}
	})

	t.Run("Expires", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{IdempotencyTTL: 50 * time.Millisecond})
		g.SaveResponse(ctx, "k", guard.StoredResponse{Status: 201, Body: []byte("{}")})
		waitFor(t, "the response to expire", 2*time.Second, func() bool {
			_, ok := g.LoadResponse(ctx, "k")
			return !ok
		})
	})
}
