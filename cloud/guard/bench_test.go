package guard_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

// Run with: go test -run '^$' -bench . -benchmem ./cloud/guard/
// (against the Redis of TEST_REDIS_URL, on loopback).

func BenchmarkAllowLot(b *testing.B) {
	g, _ := setup(b, guard.Options{LotRate: guard.Limit{Rate: 1e9, Burst: 1e9}})
	ctx := context.Background()
	for b.Loop() {
		if ok, _ := g.AllowLot(ctx, "lot-1"); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkAllowLotParallel(b *testing.B) {
	g, _ := setup(b, guard.Options{LotRate: guard.Limit{Rate: 1e9, Burst: 1e9}})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.AllowLot(ctx, "lot-1")
		}
	})
}

// BenchmarkAllowLotRedisDown is the fallback path once the guard knows
// Redis is down: no network at all.
func BenchmarkAllowLotRedisDown(b *testing.B) {
	rdb, err := guard.NewClient("redis://127.0.0.1:1/0")
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	g := guard.New(rdb, guard.Options{LotRate: guard.Limit{Rate: 1e9, Burst: 1e9}, RetryInterval: time.Hour})
	ctx := context.Background()
	g.AllowLot(ctx, "lot-1") // fails once, then the guard stops trying
	for b.Loop() {
		g.AllowLot(ctx, "lot-1")
	}
}

func BenchmarkLockRelease(b *testing.B) {
	g, _ := setup(b, guard.Options{})
	ctx := context.Background()
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for b.Loop() {
		release, err := g.Lock(ctx, "lot-1", start, start.Add(2*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

func BenchmarkLockReleaseParallel(b *testing.B) {
	g, _ := setup(b, guard.Options{})
	ctx := context.Background()
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		// One lot per goroutine: the cost of the round trips, not of waiting.
		lot := "lot-" + strconv.FormatInt(n.Add(1), 10)
		for pb.Next() {
			release, err := g.Lock(ctx, lot, start, start.Add(2*time.Hour))
			if err != nil {
				b.Error(err)
				return
			}
			release()
		}
	})
}

func BenchmarkAvailabilityHit(b *testing.B) {
	g, _ := setup(b, guard.Options{})
	ctx := context.Background()
	start, end := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	_, _, v, _ := g.Availability(ctx, "lot-1", start, end)
	g.StoreAvailability(ctx, "lot-1", start, end, v, 7, 10)
	for b.Loop() {
		if _, _, _, ok := g.Availability(ctx, "lot-1", start, end); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkAllowLotCrowd is a surge: 256 callers per core at once, whose
// commands the guard sends to Redis in shared pipelines.
func BenchmarkAllowLotCrowd(b *testing.B) {
	g, _ := setup(b, guard.Options{LotRate: guard.Limit{Rate: 1e9, Burst: 1e9}})
	ctx := context.Background()
	b.SetParallelism(256)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.AllowLot(ctx, "lot-1")
		}
	})
}
