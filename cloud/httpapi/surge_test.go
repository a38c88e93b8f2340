package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/adapt"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// setupGuarded is setup with the Redis guard wired as parkcloud wires it,
// in a namespace of its own on the shared Redis.
func setupGuarded(t testing.TB, opts guard.Options) *bundle {
	return setupGuardedAt(t, "redis://127.0.0.1:6379/0", opts)
}

func setupGuardedAt(t testing.TB, redisURL string, opts guard.Options) *bundle {
	t.Helper()
	s := pgtest.New(t, 40)
	rdb, err := guard.NewClient(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	var ns [4]byte
	_, _ = rand.Read(ns[:])
	opts.Namespace = "bench-" + hex.EncodeToString(ns[:])
	g := guard.New(rdb, opts)
	svc := booking.New(s.DB, nil, adapt.Guard{G: g}, nil, 10*time.Minute)
	api := &httpapi.Server{Booking: svc, DB: s.DB, AdminToken: adminToken, Limiter: g, Cache: adapt.Cache{G: g}}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, schema: s, svc: svc}
}

// BenchmarkSurge: 1,000 drivers at once on one lot of 50 spots while 100
// other lots book at a steady rate. It measures the other lots' p99 without
// and with the surge in one run, and with a surge of as many requests that
// do nothing (the floor this machine sets), and checks the hot lot: exactly
// 50 holds, every other answer a quick 409 or 429, no overlap.
func BenchmarkSurge(b *testing.B) {
	benchClient()
	bd := setupGuarded(b, guard.Options{
		LotRate:    guard.Limit{Rate: 200, Burst: 200},
		ClientRate: guard.Limit{Rate: 1e6, Burst: 1e6}, // every benchmark client is 127.0.0.1
	})
	hot := bd.createLot(b, 50)
	others := make([]string, 100)
	for i := range others {
		others[i] = bd.createLot(b, 20)
	}
	base := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
	var seq int
	var seqMu sync.Mutex
	// steady books the other lots at about rate holds/s for d.
	steady := func(rate int, d time.Duration) *latencies {
		lat := &latencies{}
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			<-tick.C
			seqMu.Lock()
			i := seq
			seq++
			seqMu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				lot := others[i%len(others)]
				w := base.Add(time.Duration(i/len(others)%300) * time.Hour)
				t0 := time.Now()
				r := bd.do(b, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("O%06d", i), w, w.Add(time.Hour)), key(fmt.Sprint("o-", i)))
				lat.add(time.Since(t0))
				if r.Status != 201 {
					b.Errorf("steady lot: %d %s", r.Status, r.Body)
				}
			}()
		}
		wg.Wait()
		return lat
	}
	const rate = 100
	// Each driver of the surge has its own warm connection, as a load
	// balancer in front of the replicas keeps them: the surge is of
	// requests, not of TCP handshakes. The drivers speak HTTP/1.1 through
	// driverConn, which costs this shared machine half what net/http's
	// client does; the steady lots keep net/http, the same before and
	// during the surge.
	drivers := make([]*driverConn, benchN(1000))
	for i := range drivers {
		drivers[i] = dialDriver(b, bd.srv.URL)
		defer drivers[i].close()
		drivers[i].do(b, "GET", "/healthz", nil, nil)
	}
	steady(rate, 2*time.Second) // warm up
	baseline := steady(rate, 5*time.Second)

	// The floor: the same number of requests at once to /healthz, which
	// does nothing, while the other lots book. On a small machine that
	// hosts the load generator too, 1,000 requests at once cost the other
	// lots this much whatever the service does with them; the hot lot's
	// surge below is to be read against it.
	var floor *latencies
	var floorWG sync.WaitGroup
	floorWG.Go(func() { floor = steady(rate, 3*time.Second) })
	time.Sleep(500 * time.Millisecond)
	for _, d := range drivers {
		floorWG.Go(func() { d.do(b, "GET", "/healthz", nil, nil) })
	}
	floorWG.Wait()

	var surgeLat, acceptedLat latencies
	codes, attempts := map[int]int{}, map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var during *latencies
	wg.Add(1)
	go func() { defer wg.Done(); during = steady(rate, 8*time.Second) }()
	start := make(chan struct{})
	for i, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// A driver told 429 comes back after Retry-After (with
			// jitter), with the same key, as a client should.
			var r reply
			for attempt := 0; ; attempt++ {
				t0 := time.Now()
				r = d.do(b, "POST", "/v1/reservations", hold(hot, fmt.Sprintf("HOT%05d", i), base, base.Add(3*time.Hour)), key(fmt.Sprint("hot-", i)))
				d := time.Since(t0)
				surgeLat.add(d)
				if r.Status == 201 {
					acceptedLat.add(d)
				}
				mu.Lock()
				attempts[r.Status]++
				mu.Unlock()
				if r.Status != 429 || attempt == 20 {
					break
				}
				time.Sleep(time.Second + time.Duration(mrand.IntN(1000))*time.Millisecond)
			}
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the steady load run before the surge
	close(start)
	wg.Wait()

	assertNoOverlap(b, bd)
	var held int
	if err := bd.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM reservations WHERE lot_id = $1 AND status = 'PENDING'`, hot).Scan(&held); err != nil {
		b.Fatal(err)
	}
	if held != 50 || codes[201] != 50 || codes[201]+codes[409] != benchN(1000) {
		b.Errorf("hot lot: %d holds, final statuses %v", held, codes)
	}
	b.Logf("hot lot: final statuses %v, all attempts %v", codes, attempts)
	b.ReportMetric(ms(acceptedLat.pct(.99)), "hot_accepted_p99_ms")
	b.ReportMetric(ms(surgeLat.pct(.99)), "hot_all_p99_ms")
	b.ReportMetric(ms(baseline.pct(.99)), "others_p99_before_ms")
	b.ReportMetric(ms(during.pct(.99)), "others_p99_during_ms")
	b.ReportMetric(float64(during.pct(.99))/float64(baseline.pct(.99)), "others_p99_ratio")
	b.ReportMetric(ms(floor.pct(.99)), "others_p99_floor_ms")
	b.ReportMetric(float64(during.pct(.99))/float64(floor.pct(.99)), "others_p99_vs_floor")
}

// TestRedisAway: with Redis unreachable the guard degrades and booking
// stays correct: holds, replays from Postgres, no overlap.
func TestRedisAway(t *testing.T) {
	t.Parallel()
	bd := setupGuardedAt(t, "redis://127.0.0.1:1/0", guard.Options{})
	lot := bd.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = bd.doRetry(t, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("R%03d", i), start, start.Add(time.Hour)), key(fmt.Sprint("r", i))).Status
		}()
	}
	wg.Wait()
	n := map[int]int{}
	for _, c := range codes {
		n[c]++
	}
	if n[201] != 2 || n[409] != 18 {
		t.Errorf("statuses %v, want 2×201, 18×409", n)
	}
	// The fallback limits are strict (this replica's share) and the
	// requests above used some: a client told 429 comes back.
	r := bd.doRetry(t, "POST", "/v1/reservations", hold(lot, "R000", start, start.Add(time.Hour)), key("r0"))
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay without Redis: %d %s", r.Status, r.Body)
	}
	assertNoOverlap(t, bd)
}

// TestRateLimits: the per-client and per-lot limits answer 429 with a
// Retry-After in whole seconds and the API's error body, and a limited lot
// or client leaves the others alone.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	t.Run("Client", func(t *testing.T) {
		t.Parallel()
		bd := setupGuarded(t, guard.Options{ClientRate: guard.Limit{Rate: 0.2, Burst: 1}})
		path := "/v1/reservations/00000000-0000-4000-8000-000000000000"
		if r := bd.do(t, "GET", path, nil, nil); r.Status != 404 {
			t.Fatalf("first request: %d %s", r.Status, r.Body)
		}
		r := bd.do(t, "GET", path, nil, nil)
		if r.Status != 429 || r.code() != "rate_limited" {
			t.Fatalf("second request: %d %s", r.Status, r.Body)
		}
		if got := r.Header.Get("Retry-After"); got != "5" {
			t.Errorf("Retry-After = %q, want \"5\" at 0.2/s", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
	})
	t.Run("Lot", func(t *testing.T) {
		t.Parallel()
		bd := setupGuarded(t, guard.Options{LotRate: guard.Limit{Rate: 0.5, Burst: 1}, ClientRate: guard.Unlimited})
		a, b := bd.createLot(t, 5), bd.createLot(t, 5)
		start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
		if r := bd.do(t, "POST", "/v1/reservations", hold(a, "A1", start, start.Add(time.Hour)), key("a1")); r.Status != 201 {
			t.Fatalf("first hold: %d %s", r.Status, r.Body)
		}
		r := bd.do(t, "POST", "/v1/reservations", hold(a, "A2", start, start.Add(time.Hour)), key("a2"))
		if r.Status != 429 || r.code() != "rate_limited" || r.Header.Get("Retry-After") != "2" {
			t.Fatalf("second hold on the lot: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
		}
		if r := bd.do(t, "POST", "/v1/reservations", hold(b, "B1", start, start.Add(time.Hour)), key("b1")); r.Status != 201 {
			t.Fatalf("another lot: %d %s", r.Status, r.Body)
		}
		// The lot is still over its limit, but a retry of the hold that got
		// in is given its hold back, not refused: the driver whose answer
		// was lost must learn of the spot it holds.
		r = bd.do(t, "POST", "/v1/reservations", hold(a, "A1", start, start.Add(time.Hour)), key("a1"))
		if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry of the first hold while the lot is limited: %d replayed %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
		}
		// A retry with the key but another body is still told so.
		r = bd.do(t, "POST", "/v1/reservations", hold(a, "A9", start, start.Add(time.Hour)), key("a1"))
		if r.Status != 422 || r.code() != "idempotency_key_reused" {
			t.Fatalf("reused key while the lot is limited: %d %s", r.Status, r.Body)
		}
	})
}
