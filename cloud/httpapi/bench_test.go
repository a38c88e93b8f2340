package httpapi_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencies collects request durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[min(len(l.d)-1, int(float64(len(l.d))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runClients runs n requests over c concurrent clients; next(i) makes the
// request body for the i-th request and ok says whether a status counts.
func runClients(b *testing.B, bd *bundle, c, n int, next func(i int) (string, string, any, map[string]string)) (lat *latencies, codes map[int]int, elapsed time.Duration) {
	lat = &latencies{}
	codes = map[int]int{}
	var mu sync.Mutex
	var i atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(i.Add(1)) - 1
				if k >= n {
					return
				}
				method, path, body, hdr := next(k)
				t0 := time.Now()
				r := bd.do(b, method, path, body, hdr)
				lat.add(time.Since(t0))
				mu.Lock()
				codes[r.Status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, codes, time.Since(start)
}

func benchClient() {
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 2048
	http.DefaultTransport.(*http.Transport).MaxIdleConns = 0 // no overall cap: the surge keeps its connections warm
}

// BenchmarkHolds measures holds through the HTTP API against real Postgres:
// ManyLots is 16 clients over 100 lots; HotLot is 256 clients on one lot
// of 50 spots with windows sliding so most requests can succeed. Run with
// -benchtime 1x: each sub-benchmark makes a fixed number of holds.
func BenchmarkHolds(b *testing.B) {
	benchClient()
	base := time.Now().Add(24 * time.Hour).Truncate(time.Hour).UTC()
	b.Run("ManyLots16", func(b *testing.B) {
		bd := setup(b)
		lots := make([]string, 100)
		for i := range lots {
			lots[i] = bd.createLot(b, 50)
		}
		n := benchN(4000)
		lat, codes, el := runClients(b, bd, 16, n, func(i int) (string, string, any, map[string]string) {
			lot := lots[i%len(lots)]
			w := base.Add(time.Duration(i/len(lots)%200) * time.Hour)
			return "POST", "/v1/reservations", hold(lot, fmt.Sprintf("M%06d", i), w, w.Add(time.Hour)), key(fmt.Sprint("m-", i))
		})
		reportHolds(b, lat, codes, el)
		if codes[201] != n {
			b.Errorf("statuses %v", codes)
		}
		b.ReportMetric(pgbenchRatio(b, bd, float64(codes[201])/el.Seconds()), "ratio_vs_pgbench")
	})
	b.Run("HotLot256", func(b *testing.B) {
		bd := setup(b)
		lot := bd.createLot(b, 50)
		n := benchN(4000)
		lat, codes, el := runClients(b, bd, 256, n, func(i int) (string, string, any, map[string]string) {
			// 50 requests per window: each window fills the lot exactly.
			w := base.Add(time.Duration(i/50) * time.Hour)
			return "POST", "/v1/reservations", hold(lot, fmt.Sprintf("H%06d", i), w, w.Add(time.Hour)), key(fmt.Sprint("h-", i))
		})
		reportHolds(b, lat, codes, el)
		assertNoOverlap(b, bd)
	})
}

func reportHolds(b *testing.B, lat *latencies, codes map[int]int, el time.Duration) {
	b.ReportMetric(float64(codes[201])/el.Seconds(), "holds/s")
	b.ReportMetric(ms(lat.pct(.5)), "p50_ms")
	b.ReportMetric(ms(lat.pct(.99)), "p99_ms")
	b.Logf("statuses %v in %v", codes, el)
}

// pgbenchRatio runs pgbench for 10 s with 16 clients, one transaction doing
// the writes of a hold as separate statements (idempotency row, lot
// sequence, reservation, change-log row), on copies of our tables, and
// returns ours/theirs.
func pgbenchRatio(b *testing.B, bd *bundle, ours float64) float64 {
	path, err := exec.LookPath("pgbench")
	if err != nil {
		b.Logf("pgbench not found: no ratio")
		return 0
	}
	ctx := context.Background()
	s := bd.schema.Name
	_, err = bd.schema.DB.Pool.Exec(ctx, `
		CREATE TABLE pb_lots (LIKE lots INCLUDING ALL);
		INSERT INTO pb_lots SELECT * FROM lots;
		CREATE TABLE pb_lot_ids AS SELECT row_number() OVER () AS n, id FROM lots;
		CREATE TABLE pb_reservations (LIKE reservations INCLUDING ALL);
		CREATE TABLE pb_idem (LIKE idempotency_keys INCLUDING ALL);
		CREATE TABLE pb_outbox (LIKE outbox INCLUDING ALL);`)
	if err != nil {
		b.Fatalf("pgbench tables: %v", err)
	}
	script := b.TempDir() + "/hold.sql"
	const sql = `\set n random(1, 100)
\set k random(1, 1000000000)
\set spot random(1, 9000000000000000)
BEGIN;
INSERT INTO pb_idem (key, request_hash, reservation_id, locked_until, expires_at) VALUES ('k' || :k || '-' || :client_id || '-' || random(), '\x00', gen_random_uuid(), now(), now() + interval '1 day');
UPDATE pb_lots SET seq = seq + 1 WHERE id = (SELECT id FROM pb_lot_ids WHERE n = :n) RETURNING seq;
INSERT INTO pb_reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency) VALUES (gen_random_uuid(), (SELECT id FROM pb_lot_ids WHERE n = :n), :spot, 'PB1', '2030-01-01'::timestamptz + :k * interval '1 minute', '2030-01-01'::timestamptz + (:k + 1) * interval '1 minute', 'PENDING', now() + interval '10 minutes', 250, 'EUR');
INSERT INTO pb_outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at) VALUES ((SELECT id FROM pb_lot_ids WHERE n = :n), :k::bigint * 1000 + :client_id, gen_random_uuid(), 'delete', 'PENDING', 'PB1', now(), now() + interval '1 hour');
COMMIT;
`
	if err := writeFile(script, sql); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(path, "-n", "-M", "prepared", "-c", "16", "-j", "2", "-T", "10", "-f", script,
		fmt.Sprintf("%s&options=-csearch_path%%3D%s,public", pgURL(), s))
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := out
		if len(tail) > 600 {
			tail = tail[len(tail)-600:]
		}
		b.Logf("pgbench failed: %v\n%s", err, tail)
		return 0
	}
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		b.Logf("pgbench output without tps:\n%s", out)
		return 0
	}
	theirs, _ := strconv.ParseFloat(string(m[1]), 64)
	b.ReportMetric(theirs, "pgbench_tps")
	return ours / theirs
}

// BenchmarkSearch measures availability and search with 1,000 lots and
// 1,000,000 reservations loaded, at 16 clients, with no cache.
func BenchmarkSearch(b *testing.B) {
	benchClient()
	bd := setup(b)
	ctx := context.Background()
	t0 := time.Now()
	_, err := bd.schema.DB.Pool.Exec(ctx, `
		INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots)
		SELECT gen_random_uuid(), 'Lot ' || i, 48.0 + (i % 40) * 0.01, 11.0 + (i / 40) * 0.01, 'UTC', 250, 'EUR', 20
		  FROM generate_series(0, 999) i;
		INSERT INTO spots (lot_id, label) SELECT l.id, s::text FROM lots l, generate_series(1, 20) s;
		INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
		SELECT gen_random_uuid(), sp.lot_id, sp.id, 'P' || sp.id || 'X' || k,
		       date_trunc('hour', now()) + (k - 25) * interval '1 hour',
		       date_trunc('hour', now()) + (k - 24) * interval '1 hour',
		       CASE WHEN k < 25 THEN 'COMPLETED' WHEN k % 7 = 0 THEN 'PENDING' ELSE 'CONFIRMED' END,
		       now() + interval '10 minutes', 250, 'EUR'
		  FROM spots sp, generate_series(0, 49) k;
		ANALYZE;`)
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	// A table that has been in service has been vacuumed: without this,
	// autovacuum starts on the fresh million rows (the insert threshold)
	// in the middle of the measurement, and first reads set hint bits.
	if _, err := bd.schema.DB.Pool.Exec(ctx, `VACUUM (ANALYZE) reservations`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	b.Logf("loaded 1000 lots, 1,000,000 reservations in %v", time.Since(t0))
	var lots []string
	rows, _ := bd.schema.DB.Pool.Query(ctx, `SELECT id::text FROM lots`)
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		lots = append(lots, id)
	}
	rows.Close()
	start := time.Now().Add(time.Hour).Truncate(time.Hour).UTC()
	win := fmt.Sprintf("starts_at=%s&ends_at=%s", start.Format(time.RFC3339), start.Add(2*time.Hour).Format(time.RFC3339))
	availability := func(i int) (string, string, any, map[string]string) {
		return "GET", "/v1/lots/" + lots[rand.IntN(len(lots))] + "/availability?" + win, nil, nil
	}
	search := func(i int) (string, string, any, map[string]string) {
		la := 48.0 + rand.Float64()*0.4
		ln := 11.0 + rand.Float64()*0.25
		return "GET", fmt.Sprintf("/v1/lots?lat=%f&lng=%f&radius_m=2000&%s", la, ln, win), nil, nil
	}
	// Warm up, unmeasured: connections, prepared statements (Postgres
	// settles on a plan after five runs per connection), caches.
	runClients(b, bd, 16, 500, availability)
	runClients(b, bd, 16, 500, search)
	b.Run("Availability16", func(b *testing.B) {
		lat, codes, el := runClients(b, bd, 16, 4000, availability)
		b.ReportMetric(float64(codes[200])/el.Seconds(), "req/s")
		b.ReportMetric(ms(lat.pct(.5)), "p50_ms")
		b.ReportMetric(ms(lat.pct(.99)), "p99_ms")
		if codes[200] != 4000 {
			b.Errorf("statuses %v", codes)
		}
	})
	b.Run("Search16", func(b *testing.B) {
		lat, codes, el := runClients(b, bd, 16, 2000, search)
		b.ReportMetric(float64(codes[200])/el.Seconds(), "req/s")
		b.ReportMetric(ms(lat.pct(.5)), "p50_ms")
		b.ReportMetric(ms(lat.pct(.99)), "p99_ms")
		if codes[200] != 2000 {
			b.Errorf("statuses %v", codes)
		}
	})
}
