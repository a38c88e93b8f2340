package guard_test

import (
	"context"
	"testing"

	"github.com/parkgate/parkgate/cloud/guard"
)

func TestAvailability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start, end := at(0, 10), at(0, 12)

	t.Run("StoreThenHit", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{})
		_, _, v, ok := g.Availability(ctx, "lot-1", start, end)
		if ok {
			t.Fatal("hit in an empty cache")
		}
		g.StoreAvailability(ctx, "lot-1", start, end, v, 7, 10)
		a, total, _, ok := g.Availability(ctx, "lot-1", start, end)
		if !ok || a != 7 || total != 10 {
			t.Fatalf("Availability = %d/%d, %v; want 7/10, hit", a, total, ok)
		}
		if _, _, _, ok := g.Availability(ctx, "lot-1", start, at(0, 13)); ok {
			t.Fatal("another window hit: entries are per exact window")
		}
	})

	t.Run("InvalidateMisses", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{})
		fill(t, g, "lot-1", 7, 10)
		fill(t, g, "lot-2", 3, 4)
		g.InvalidateLot(ctx, "lot-1")
		_, _, v, ok := g.Availability(ctx, "lot-1", start, end)
		if ok {
			t.Fatal("hit after InvalidateLot")
		}
		if _, _, _, ok := g.Availability(ctx, "lot-2", start, end); !ok {
			t.Fatal("invalidating lot-1 dropped lot-2")
		}
		g.StoreAvailability(ctx, "lot-1", start, end, v, 6, 10)
		if a, _, _, ok := g.Availability(ctx, "lot-1", start, end); !ok || a != 6 {
			t.Fatalf("after refill: %d, %v; want 6, hit", a, ok)
		}
		g.InvalidateLot(ctx, "lot-1", "lot-2")
		for _, lot := range []string{"lot-1", "lot-2"} {
			if _, _, _, ok := g.Availability(ctx, lot, start, end); ok {
				t.Fatalf("%s hit after invalidating both", lot)
			}
		}
	})

	t.Run("StaleStoreRefused", func(t *testing.T) {
		t.Parallel()
		g, b := setup(t, guard.Options{})
		// A search reads the version and goes to Postgres; meanwhile a
		// hold commits and invalidates; then the search stores its count,
		// which predates the hold.
		_, _, v, _ := g.Availability(ctx, "lot-1", start, end)
		b.replica(t).InvalidateLot(ctx, "lot-1")
		g.StoreAvailability(ctx, "lot-1", start, end, v, 1, 1)
		if a, _, _, ok := g.Availability(ctx, "lot-1", start, end); ok {
			t.Fatalf("served %d computed before the change", a)
		}
	})

	t.Run("VersionLost", func(t *testing.T) {
		t.Parallel()
		g, b := setup(t, guard.Options{})
		fill(t, g, "lot-1", 7, 10)
		// The version key is evicted (or lost) while the entry survives,
		// and the lot changes a few times after: counting again from
		// scratch must not land on the entry's version.
		if err := b.rdb.Del(ctx, b.ns+":avail:{lot-1}:ver").Err(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			g.InvalidateLot(ctx, "lot-1")
			if a, _, _, ok := g.Availability(ctx, "lot-1", start, end); ok {
				t.Fatalf("served %d stored under a lost version", a)
			}
		}
	})

	t.Run("ZeroVersionStoresNothing", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{})
		g.StoreAvailability(ctx, "lot-1", start, end, guard.Version{}, 7, 10)
		if _, _, _, ok := g.Availability(ctx, "lot-1", start, end); ok {
			t.Fatal("zero Version stored an entry")
		}
	})

	t.Run("ReplicasShare", func(t *testing.T) {
		t.Parallel()
		a, b := setup(t, guard.Options{})
		other := b.replica(t)
		fill(t, a, "lot-1", 7, 10)
		if n, _, _, ok := other.Availability(ctx, "lot-1", start, end); !ok || n != 7 {
			t.Fatalf("other replica: %d, %v; want 7, hit", n, ok)
		}
		other.InvalidateLot(ctx, "lot-1")
		if _, _, _, ok := a.Availability(ctx, "lot-1", start, end); ok {
			t.Fatal("first replica hit after the other invalidated")
		}
	})
}

// fill caches available/total for lot-1's test window and checks it hits.
func fill(t *testing.T, g *guard.Guard, lot string, available, total int) {
	t.Helper()
	ctx := context.Background()
	start, end := at(0, 10), at(0, 12)
	_, _, v, _ := g.Availability(ctx, lot, start, end)
	g.StoreAvailability(ctx, lot, start, end, v, available, total)
	if a, tt, _, ok := g.Availability(ctx, lot, start, end); !ok || a != available || tt != total {
		t.Fatalf("fill %s: %d/%d, %v", lot, a, tt, ok)
	}
}
