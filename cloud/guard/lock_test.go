package guard_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/guard"
)

var day = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func at(d, h int) time.Time {
	return day.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour)
}

func TestLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Exclusive", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{LockWait: 30 * time.Millisecond})
		release, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		_, err = g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if !errors.Is(err, guard.ErrBusy) {
			t.Fatalf("second Lock: %v, want ErrBusy", err)
		}
		if waited := time.Since(began); waited < 30*time.Millisecond || waited > 2*time.Second {
			t.Errorf("refused after %v, want about LockWait (30ms)", waited)
		}
		if code := cloud.ErrorCode(err); code != cloud.ERateLimited {
			t.Errorf("ErrBusy code %q, want %q", code, cloud.ERateLimited)
		}
		release()
		release() // idempotent
		again, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if err != nil {
			t.Fatalf("Lock after release: %v", err)
		}
		again()
	})

	t.Run("WaitsForRelease", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{LockWait: 5 * time.Second})
		release, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			r, err := g.Lock(ctx, "lot-1", at(0, 11), at(0, 13))
			if err == nil {
				r()
			}
			got <- err
		}()
		time.Sleep(20 * time.Millisecond) // let the waiter find the lock held
		release()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("waiter: %v", err)
			}
		case <-time.After(time.Second):
			t.Fatal("waiter did not get the lock within 1s of its release")
		}
	})

	t.Run("ReleaseOnlyByOwner", func(t *testing.T) {
		t.Parallel()
		g, b := setup(t, guard.Options{LockTTL: 100 * time.Millisecond, LockWait: 10 * time.Millisecond})
		releaseA, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if err != nil {
			t.Fatal(err)
		}
		// A is slow: its lock expires and B takes the window.
		var releaseB func()
		waitFor(t, "A's lock to expire and B to take it", 2*time.Second, func() bool {
			releaseB, err = g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
			return err == nil
		})
		releaseA() // late: must not free B's lock
		if _, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12)); !errors.Is(err, guard.ErrBusy) {
			t.Fatalf("Lock after the old owner's release: %v, want ErrBusy (B still holds it)", err)
		}
		keys, err := b.rdb.Keys(ctx, b.ns+":lock:*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("lock keys %v, %v; want B's one", keys, err)
		}
		releaseB()
		if n, _ := b.rdb.Exists(ctx, keys...).Result(); n != 0 {
			t.Fatal("the owner's release left its key")
		}
	})

	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		t.Parallel()
		// Judged by the TTL Redis reports, not by the test's own clock, so
		// a stalled test process cannot make it fail: while the key still
		// has more than a second to live the lot is locked; then it frees.
		const ttl = 2 * time.Second
		g, b := setup(t, guard.Options{LockTTL: ttl, LockWait: 10 * time.Millisecond})
		if _, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12)); err != nil { // a crashed owner: never released
			t.Fatal(err)
		}
		keys, _ := b.rdb.Keys(ctx, b.ns+":lock:*").Result()
		if len(keys) != 1 {
			t.Fatalf("lock keys %v", keys)
		}
		left := b.rdb.PTTL(ctx, keys[0]).Val()
		if left <= 0 || left > ttl {
			t.Fatalf("lock TTL %v, want (0, %v]", left, ttl)
		}
		if left > time.Second {
			if r, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12)); err == nil {
				r()
				t.Fatalf("lock taken again with %v of its TTL left", left)
			}
		}
		waitFor(t, "the lock to expire", 10*time.Second, func() bool {
			r, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
			if err == nil {
				r()
			}
			return err == nil
		})
	})

	t.Run("Windows", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{LockWait: 5 * time.Millisecond})
		// Held: lot-1 from 22:00 on day 0 to 02:00 on day 1.
		release, err := g.Lock(ctx, "lot-1", at(0, 22), at(1, 2))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		for _, tt := range []struct {
			name       string
			lot        string
			start, end time.Time
			contends   bool
		}{
			{"OverlapSameDay", "lot-1", at(0, 20), at(0, 23), true},
			{"OverlapNextDay", "lot-1", at(1, 1), at(1, 3), true},
			{"SpanningBoth", "lot-1", at(0, 1), at(2, 1), true},
			{"SameDayNoOverlap", "lot-1", at(0, 8), at(0, 9), true}, // coarse by design: one bucket a day
			{"OtherDay", "lot-1", at(2, 10), at(2, 12), false},
			{"OtherLot", "lot-2", at(0, 22), at(1, 2), false},
		} {
			r, err := g.Lock(ctx, tt.lot, tt.start, tt.end)
			if tt.contends && !errors.Is(err, guard.ErrBusy) {
				t.Errorf("%s: Lock = %v, want ErrBusy", tt.name, err)
			}
			if !tt.contends && err != nil {
				t.Errorf("%s: Lock = %v, want the lock", tt.name, err)
			}
			if err == nil {
				r()
			}
		}
		// All or nothing: the refused SpanningBoth left no key of day 2 behind.
		r, err := g.Lock(ctx, "lot-1", at(2, 0), at(2, 1))
		if err != nil {
			t.Fatalf("day 2 after a refused multi-day Lock: %v", err)
		}
		r()
	})

	t.Run("MutualExclusion", func(t *testing.T) {
		t.Parallel()
		g, b := setup(t, guard.Options{LockWait: 10 * time.Second})
		other := b.replica(t)
		var inside, maxInside, done atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				gg := g
				if i%2 == 1 {
					gg = other
				}
				release, err := gg.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				done.Add(1)
				release()
			})
		}
		wg.Wait()
		if maxInside.Load() != 1 || done.Load() != 16 {
			t.Fatalf("at most %d inside at once, %d of 16 done; want 1 and 16", maxInside.Load(), done.Load())
		}
	})

	t.Run("ContextEnds", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{LockWait: 10 * time.Second})
		release, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if _, err := g.Lock(cctx, "lot-1", at(0, 10), at(0, 12)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock with an ending context: %v, want DeadlineExceeded", err)
		}
	})
}
