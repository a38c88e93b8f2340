package guard_test

import (
	"context"
	"crypto/rand"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/redis/go-redis/v9"
)

// The tests in this file read the package-level gauges, so they do not run
// in parallel: a parallel test's Guard would set parkgate_redis_up too.

func fallbackCount(t *testing.T, feature string) float64 {
	return metricValue(t, "parkgate_guard_fallbacks_total", map[string]string{"feature": feature})
}

func redisUpGauge(t *testing.T) float64 { return metricValue(t, "parkgate_redis_up", nil) }

func cacheBypassedGauge(t *testing.T) float64 {
	return metricValue(t, "parkgate_guard_cache_bypassed", nil)
}

// commandCounter counts the commands a client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestRedisUnreachable(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t, "redis://127.0.0.1:"+strconv.Itoa(freePort(t))+"/0")
	cmds := &commandCounter{}
	rdb.AddHook(cmds)
	g := guard.New(rdb, guard.Options{
		Namespace:     "guardtest-" + rand.Text(),
		LotRate:       guard.Limit{Rate: 0.01, Burst: 6},
		Replicas:      3,
		RetryInterval: time.Hour, // no probe during the test
	})
	rl, lk, idem, av := fallbackCount(t, "ratelimit"), fallbackCount(t, "lock"), fallbackCount(t, "idempotency"), fallbackCount(t, "availability")

	t.Run("LimiterFallsBackPerReplica", func(t *testing.T) {
		if n := countAllowed(g.AllowLot, "lot-1", 10); n != 2 {
			t.Fatalf("allowed %d of 10, want this replica's share 6/3 = 2", n)
		}
		if ok, retry := g.AllowLot(ctx, "lot-1"); ok || retry <= 0 {
			t.Fatalf("AllowLot = %v, %v; want refused with a retry", ok, retry)
		}
	})

	t.Run("DownStateSkipsRedis", func(t *testing.T) {
		before := cmds.n.Load()
		began := time.Now()
		for range 100 {
			g.AllowClient(ctx, "10.0.0.1")
		}
		if sent := cmds.n.Load() - before; sent != 0 {
			t.Errorf("%d commands sent to a Redis known to be down", sent)
		}
		if d := time.Since(began); d > time.Second {
			t.Errorf("100 fallback decisions took %v", d)
		}
	})

	t.Run("LockProceeds", func(t *testing.T) {
		release, err := g.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
		if err != nil || release == nil {
			t.Fatalf("Lock = %v; want to proceed without the lock", err)
		}
		release()
	})

	t.Run("CachesBypassed", func(t *testing.T) {
		g.SaveResponse(ctx, "k", guard.StoredResponse{Status: 201})
		if _, ok := g.LoadResponse(ctx, "k"); ok {
			t.Fatal("LoadResponse hit without Redis")
		}
		g.InvalidateLot(ctx, "lot-1")
		_, _, v, ok := g.Availability(ctx, "lot-1", at(0, 10), at(0, 12))
		if ok || v != (guard.Version{}) {
			t.Fatalf("Availability = %v, %v; want a bypass with no version", v, ok)
		}
		g.StoreAvailability(ctx, "lot-1", at(0, 10), at(0, 12), v, 1, 1) // a no-op, not a panic
		if p := g.PeekState(ctx, "k", "lot-1", at(0, 10), at(0, 12), true); p.Stored || p.Cached || p.Version != (guard.Version{}) {
			t.Fatalf("Peek = %+v; want nothing, and no version", p)
		}
	})

	t.Run("Reported", func(t *testing.T) {
		if g.Healthy() {
			t.Error("Healthy with no Redis")
		}
		s := g.Status()
		if s.RedisUp || s.RateLimit != "per-replica" || !s.CacheBypassed || s.LastError == "" || s.DownSince.IsZero() {
			t.Errorf("Status = %+v", s)
		}
		if v := redisUpGauge(t); v != 0 {
			t.Errorf("parkgate_redis_up = %v, want 0", v)
		}
		if v := cacheBypassedGauge(t); v != 1 {
			t.Errorf("parkgate_guard_cache_bypassed = %v, want 1", v)
		}
		for feature, before := range map[string]float64{"ratelimit": rl, "lock": lk, "idempotency": idem, "availability": av} {
			if after := fallbackCount(t, feature); after <= before {
				t.Errorf("fallbacks{feature=%q} stayed at %v", feature, after)
			}
		}
	})
}

// TestRedisHung: a Redis that accepts but never answers costs a call at
// most OpTimeout, and only until the guard knows it is down.
func TestRedisHung(t *testing.T) {
	ctx := context.Background()
	p := startProxy(t, testRedisAddr(t))
	// Socket timeouts far above OpTimeout, so only the guard's deadline can
	// end a call early.
	opt, err := redis.ParseURL(p.url())
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	opt.ReadTimeout, opt.WriteTimeout = 10*time.Second, 10*time.Second
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	cmds := &commandCounter{}
	rdb.AddHook(cmds)
	g := guard.New(rdb, guard.Options{
		Namespace:     "guardtest-" + rand.Text(),
		OpTimeout:     100 * time.Millisecond,
		RetryInterval: time.Hour,
	})
	if ok, _ := g.AllowLot(ctx, "lot-1"); !ok || !g.Healthy() {
		t.Fatal("first call through the proxy failed")
	}

	// A lone timeout takes the fallback for that call only.
	p.stall.Store(true)
	g.AllowLot(ctx, "lot-1")
	p.stall.Store(false)
	if !g.Healthy() {
		t.Fatal("one timeout took Redis for down")
	}
	if g.Status().CacheBypassed {
		t.Fatal("one timed-out rate-limit call turned the cache off")
	}
	before := cmds.n.Load()
	g.AllowLot(ctx, "lot-1")
	if sent := cmds.n.Load() - before; sent == 0 {
		t.Fatal("the call after a lone timeout did not go to Redis")
	}

	p.stall.Store(true)
	for i := range 3 { // FailureThreshold
		began := time.Now()
		ok, _ := g.AllowLot(ctx, "lot-1")
		if d := time.Since(began); !ok || d > 2*time.Second {
			t.Fatalf("AllowLot %d on a hung Redis: %v after %v; want allowed by the fallback after about OpTimeout", i, ok, d)
		}
	}
	before = cmds.n.Load()
	for range 100 {
		g.AllowLot(ctx, "lot-1")
	}
	if sent := cmds.n.Load() - before; sent != 0 || g.Healthy() {
		t.Fatalf("%d commands sent (healthy %v) after the timeout: want the fallback without trying", sent, g.Healthy())
	}
}

// TestUnreachableInvalidation is the dangerous case: a replica cannot reach
// Redis when a reservation changes, so the invalidation is lost while Redis
// keeps the old entry. No replica may serve that entry once Redis is back.
func TestUnreachableInvalidation(t *testing.T) {
	ctx := context.Background()
	p := startProxy(t, testRedisAddr(t))
	ns := "guardtest-" + rand.Text()
	// Cut connections fail at once; the long OpTimeout only keeps a loaded
	// machine from timing out calls that should succeed.
	opts := guard.Options{Namespace: ns, OpTimeout: 2 * time.Second, RetryInterval: 10 * time.Millisecond, HealthInterval: 10 * time.Millisecond}
	a := guard.New(newClient(t, p.url()), opts) // behind the proxy
	direct := newClient(t, testRedisURL())
	b := guard.New(direct, opts) // another replica, never cut off
	t.Cleanup(func() { deleteNamespace(t, direct, ns) })

	fill(t, a, "lot-1", 1, 10)
	fill(t, a, "lot-2", 5, 10)

	p.setCut(true)
	a.InvalidateLot(ctx, "lot-1") // the lot's last spot was just taken; Redis never hears of it
	if _, _, _, ok := a.Availability(ctx, "lot-1", at(0, 10), at(0, 12)); ok {
		t.Fatal("the cut-off replica served from the cache")
	}
	if !a.Status().CacheBypassed || cacheBypassedGauge(t) != 1 {
		t.Fatalf("cache not reported bypassed: %+v", a.Status())
	}

	p.setCut(false)
	runGuard(t, a)
	waitFor(t, "the replica to turn its cache back on", 5*time.Second, func() bool {
		return a.Healthy() && !a.Status().CacheBypassed
	})
	if v := cacheBypassedGauge(t); v != 0 {
		t.Errorf("parkgate_guard_cache_bypassed = %v after recovery", v)
	}
	for name, g := range map[string]*guard.Guard{"recovered": a, "other": b} {
		for _, lot := range []string{"lot-1", "lot-2"} {
			if n, _, _, ok := g.Availability(ctx, lot, at(0, 10), at(0, 12)); ok {
				t.Errorf("%s replica served %s's entry from before the outage (%d free)", name, lot, n)
			}
		}
	}
	fill(t, b, "lot-1", 0, 10) // and the cache works again
}

// TestRedisStopStart stops the guard's Redis (one of the test's own) and
// starts it again, empty, on the same port.
func TestRedisStopStart(t *testing.T) {
	ctx := context.Background()
	srv := startRedisServer(t)
	opts := guard.Options{
		Namespace:      "guardtest",
		LotRate:        guard.Limit{Rate: 0.01, Burst: 4},
		Replicas:       2,
		OpTimeout:      2 * time.Second, // a killed Redis fails calls at once
		LockWait:       10 * time.Millisecond,
		RetryInterval:  10 * time.Millisecond,
		HealthInterval: 10 * time.Millisecond,
	}
	a := guard.New(newClient(t, srv.url()), opts)
	b := guard.New(newClient(t, srv.url()), opts)
	runGuard(t, a)
	runGuard(t, b)

	shared := func(lot string) int {
		n := 0
		for i := range 8 {
			g := a
			if i%2 == 1 {
				g = b
			}
			if ok, _ := g.AllowLot(ctx, lot); ok {
				n++
			}
		}
		return n
	}
	if n := shared("lot-1"); n != 4 {
		t.Fatalf("before the stop: replicas allowed %d together, want the shared burst 4", n)
	}
	fill(t, a, "lot-1", 3, 10)

	srv.stop()
	waitFor(t, "both replicas to see Redis down", 5*time.Second, func() bool { return !a.Healthy() && !b.Healthy() })
	if v := redisUpGauge(t); v != 0 {
		t.Errorf("parkgate_redis_up = %v with Redis stopped", v)
	}
	if n := countAllowed(a.AllowLot, "lot-9", 8); n != 2 {
		t.Errorf("Redis down: one replica allowed %d, want its share 4/2 = 2", n)
	}
	if s := a.Status(); s.RateLimit != "per-replica" || !s.CacheBypassed {
		t.Errorf("Status with Redis down = %+v", s)
	}
	release, err := a.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
	if err != nil {
		t.Fatalf("Lock with Redis down: %v; want to proceed", err)
	}
	release()
	if _, _, _, ok := a.Availability(ctx, "lot-1", at(0, 10), at(0, 12)); ok {
		t.Error("availability served with Redis down")
	}
	a.InvalidateLot(ctx, "lot-1") // a change during the outage

	srv.start()
	waitFor(t, "both replicas to recover", 10*time.Second, func() bool {
		return a.Healthy() && b.Healthy() && !a.Status().CacheBypassed && !b.Status().CacheBypassed
	})
	if v := redisUpGauge(t); v != 1 {
		t.Errorf("parkgate_redis_up = %v after the restart", v)
	}
	if _, _, _, ok := b.Availability(ctx, "lot-1", at(0, 10), at(0, 12)); ok {
		t.Error("an entry from before the restart was served")
	}
	fill(t, b, "lot-1", 2, 10)
	if n, _, _, ok := a.Availability(ctx, "lot-1", at(0, 10), at(0, 12)); !ok || n != 2 {
		t.Errorf("after the restart: %d, %v; want the new entry", n, ok)
	}
	if n := shared("lot-2"); n != 4 {
		t.Errorf("after the restart: replicas allowed %d together, want the shared burst 4 again", n)
	}
	release, err = a.Lock(ctx, "lot-1", at(0, 10), at(0, 12))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "lot-1", at(0, 10), at(0, 12)); err != guard.ErrBusy {
		t.Errorf("after the restart the lock is not exclusive: %v", err)
	}
	release()
}

// TestFallbackRefills drives the per-replica bucket with a fake clock.
func TestFallbackRefills(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	g := guard.New(newClient(t, "redis://127.0.0.1:"+strconv.Itoa(freePort(t))+"/0"), guard.Options{
		Namespace:        "guardtest-" + rand.Text(),
		ClientRate:       guard.Limit{Rate: 2, Burst: 4},
		Replicas:         2, // this replica's share: 1/s, burst 2
		FailureThreshold: 1,
		RetryInterval:    time.Hour,
		Now:              func() time.Time { return now },
	})
	if n := countAllowed(g.AllowClient, "c", 5); n != 2 {
		t.Fatalf("allowed %d, want the share's burst 2", n)
	}
	ok, retry := g.AllowClient(ctx, "c")
	if ok || retry != time.Second {
		t.Fatalf("AllowClient = %v, %v; want refused, retry 1s", ok, retry)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, retry := g.AllowClient(ctx, "c"); ok || retry != 500*time.Millisecond {
		t.Fatalf("after 0.5s: %v, %v; want refused, retry 0.5s", ok, retry)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := g.AllowClient(ctx, "c"); !ok {
		t.Fatal("after 1s: refused, want one more at 1/s")
	}
	now = now.Add(time.Hour)
	if n := countAllowed(g.AllowClient, "c", 5); n != 2 {
		t.Fatalf("after an hour: allowed %d, want a full burst of 2, no more", n)
	}
}
