package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
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
// 50 holds, every other answer a quick 409 or 429, no overlap. The drivers
// are a child process (TestSurgeCrowd); the steady lots' client is here.
func BenchmarkSurge(b *testing.B) {
	benchClient()
	bd := setupGuarded(b, guard.Options{
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
	// steady books the other lots at about rate holds/s until stop, and
	// returns when each request started and how long it took.
	type sample struct {
		at   time.Time
		took time.Duration
	}
	steady := func(rate int, stop <-chan time.Time) []sample {
		var mu sync.Mutex
		var out []sample
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		var wg sync.WaitGroup
		for {
			select {
			case <-stop:
				wg.Wait()
				return out
			case <-tick.C:
			}
			seqMu.Lock()
			i := seq
			seq++
			seqMu.Unlock()
			wg.Go(func() {
				lot := others[i%len(others)]
				w := base.Add(time.Duration(i/len(others)%300) * time.Hour)
				t0 := time.Now()
				r := bd.do(b, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("O%06d", i), w, w.Add(time.Hour)), key(fmt.Sprint("o-", i)))
				mu.Lock()
				out = append(out, sample{t0, time.Since(t0)})
				mu.Unlock()
				if r.Status != 201 {
					b.Errorf("steady lot: %d %s", r.Status, r.Body)
				}
			})
		}
	}
	// within is the latencies of the samples that started in [from, to).
	within := func(samples []sample, from, to time.Time) *latencies {
		l := &latencies{}
		for _, s := range samples {
			if !s.at.Before(from) && s.at.Before(to) {
				l.d = append(l.d, s.took)
			}
		}
		return l
	}
	const rate = 100
	// The surge's drivers run in a process of their own, as they would on
	// their phones: in this one their 1,000 goroutines would queue in the
	// same run queue as the server's and the steady lots' and be counted
	// against the service. They share this machine's two cores all the
	// same.
	crowd := startCrowd(b, crowdConfig{URL: bd.srv.URL, Hot: hot, Base: base, N: benchN(1000)})
	steady(rate, time.After(2*time.Second)) // warm up
	all := steady(rate, time.After(5*time.Second))
	baseline := within(all, time.Time{}, time.Now())

	// The surge, and the other lots' requests from the moment the drivers
	// are let go: over the surge itself (from then until the last driver
	// has its final answer; with full lots answered 409 at once, a few
	// hundred milliseconds), and over a window of at least 10 s from its
	// start, the resolution an operator's p99 has.
	const window = 10 * time.Second
	stop := make(chan time.Time)
	var wg sync.WaitGroup
	wg.Go(func() { all = steady(rate, stop) })
	time.Sleep(500 * time.Millisecond) // the steady load runs before the surge
	surgeAt := time.Now()
	res := crowd.run(b, "surge")
	surgeEnd := time.Now()
	span := max(window, surgeEnd.Sub(surgeAt))
	time.Sleep(time.Until(surgeAt.Add(span)))
	close(stop)
	wg.Wait()
	during := within(all, surgeAt, surgeAt.Add(span))
	inSurge := within(all, surgeAt, surgeEnd)
	surgeLat, acceptedLat := &latencies{d: res.All}, &latencies{d: res.Accepted}
	codes, attempts := res.Codes, res.Attempts

	// The floor: as many requests at once to /healthz, which does
	// nothing, and the other lots' requests over as long a window. On a
	// small machine that hosts the load generator too, a thousand
	// requests at once cost the other lots this much whatever the service
	// does with them; the surge is to be read against it.
	stop = make(chan time.Time)
	wg.Go(func() { all = steady(rate, stop) })
	time.Sleep(500 * time.Millisecond)
	floorAt := time.Now()
	crowd.run(b, "floor")
	time.Sleep(time.Until(floorAt.Add(span)))
	close(stop)
	wg.Wait()
	floor := within(all, floorAt, floorAt.Add(span))

	assertNoOverlap(b, bd)
	var held int
	if err := bd.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM reservations WHERE lot_id = $1 AND status = 'PENDING'`, hot).Scan(&held); err != nil {
		b.Fatal(err)
	}
	if held != 50 || codes[201] != 50 || codes[201]+codes[409] != benchN(1000) {
		b.Errorf("hot lot: %d holds, final statuses %v", held, codes)
	}
	b.Logf("hot lot: final statuses %v, all attempts %v; the surge lasted %v, the other lots made %d requests meanwhile (max %.1f ms), %d in the %v from its start",
		codes, attempts, surgeEnd.Sub(surgeAt).Round(time.Millisecond), len(inSurge.d), ms(inSurge.pct(1)), len(during.d), span.Round(time.Millisecond))
	b.ReportMetric(ms(acceptedLat.pct(.99)), "hot_accepted_p99_ms")
	b.ReportMetric(ms(surgeLat.pct(.99)), "hot_all_p99_ms")
	b.ReportMetric(ms(baseline.pct(.99)), "others_p99_before_ms")
	b.ReportMetric(ms(during.pct(.99)), "others_p99_during_ms")
	b.ReportMetric(float64(during.pct(.99))/float64(baseline.pct(.99)), "others_p99_ratio")
	b.ReportMetric(ms(inSurge.pct(1)), "others_max_in_surge_ms")
	b.ReportMetric(ms(floor.pct(.99)), "others_p99_floor_ms")
	b.ReportMetric(float64(during.pct(.99))/float64(floor.pct(.99)), "others_p99_vs_floor")
}

// TestFullLotBeforeLimit: a lot known to be full for the window answers
// 409 even while its rate limit refuses everyone, so a driver in a surge
// learns there is no spot instead of being told to come back; a window of
// the same lot with room is still limited, and a retry of the hold that
// got in is given it back.
func TestFullLotBeforeLimit(t *testing.T) {
	t.Parallel()
	bd := setupGuarded(t, guard.Options{LotRate: guard.Limit{Rate: 0.1, Burst: 2}, ClientRate: guard.Unlimited})
	lot := bd.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	if r := bd.do(t, "POST", "/v1/reservations", hold(lot, "F1", start, start.Add(time.Hour)), key("f1")); r.Status != 201 {
		t.Fatalf("first hold: %d %s", r.Status, r.Body)
	}
	// The second takes the limit's last token and finds the lot full,
	// which the cache then knows.
	if r := bd.do(t, "POST", "/v1/reservations", hold(lot, "F2", start, start.Add(time.Hour)), key("f2")); r.Status != 409 {
		t.Fatalf("second hold: %d %s", r.Status, r.Body)
	}
	for i := range 5 {
		r := bd.do(t, "POST", "/v1/reservations", hold(lot, fmt.Sprint("FX", i), start, start.Add(time.Hour)), key(fmt.Sprint("fx", i)))
		if r.Status != 409 || r.code() != "no_availability" {
			t.Fatalf("hold %d on the full lot, its limit spent: %d %s", i, r.Status, r.Body)
		}
	}
	later := start.Add(2 * time.Hour)
	if r := bd.do(t, "POST", "/v1/reservations", hold(lot, "L1", later, later.Add(time.Hour)), key("l1")); r.Status != 429 {
		t.Fatalf("a window with room, the limit spent: %d %s", r.Status, r.Body)
	}
	r := bd.do(t, "POST", "/v1/reservations", hold(lot, "F1", start, start.Add(time.Hour)), key("f1"))
	if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry of the first hold: %d %s", r.Status, r.Body)
	}
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

// crowdConfig tells the crowd process where the hot lot is.
type crowdConfig struct {
	URL  string
	Hot  string
	Base time.Time
	N    int
}

// crowdResult is what the crowd saw of one command.
type crowdResult struct {
	All, Accepted   []time.Duration // every attempt; the attempts answered 201
	Codes, Attempts map[int]int     // final status per driver; status per attempt
}

// crowd is the handle on the crowd process: one command at a time.
type crowd struct {
	in  io.Writer
	out *bufio.Scanner
}

const crowdEnv = "PARKGATE_SURGE_CROWD"

// startCrowd starts this test binary again as the crowd (TestSurgeCrowd)
// and waits until every driver's connection is warm.
func startCrowd(b *testing.B, cfg crowdConfig) *crowd {
	b.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurgeCrowd$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), crowdEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close() // the crowd ends at EOF
		_ = cmd.Wait()
	})
	c := &crowd{in: in, out: bufio.NewScanner(out)}
	c.out.Buffer(nil, 64<<20)
	c.reply(b)
	return c
}

// run sends a command to the crowd and waits for what it saw.
func (c *crowd) run(b *testing.B, command string) crowdResult {
	b.Helper()
	if _, err := fmt.Fprintln(c.in, command); err != nil {
		b.Fatal(err)
	}
	var res crowdResult
	if err := json.Unmarshal(c.reply(b), &res); err != nil {
		b.Fatal(err)
	}
	return res
}

// reply is the crowd's next line of its own; the test framework's are
// skipped.
func (c *crowd) reply(b *testing.B) []byte {
	for c.out.Scan() {
		if line, ok := bytes.CutPrefix(c.out.Bytes(), []byte("CROWD ")); ok {
			return line
		}
	}
	b.Fatalf("the crowd process ended: %v", c.out.Err())
	return nil
}

// TestSurgeCrowd is not a test of its own: BenchmarkSurge runs it in a
// child process as the hot lot's drivers, each on its own warm connection
// (as a load balancer keeps them: the surge is of requests, not of TCP
// handshakes). Commands come one per line on stdin: "floor" sends every
// driver's GET /healthz at once, "surge" every driver's hold at once, a
// driver told 429 coming back after Retry-After with jitter and the same
// key, as a client should.
func TestSurgeCrowd(t *testing.T) {
	raw := os.Getenv(crowdEnv)
	if raw == "" {
		t.Skip("the surge's crowd; BenchmarkSurge runs it")
	}
	var cfg crowdConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	drivers := make([]*driverConn, cfg.N)
	for i := range drivers {
		drivers[i] = dialDriver(t, cfg.URL)
		defer drivers[i].close()
		if _, err := drivers[i].do("GET", "/healthz", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	say := func(v any) {
		j, _ := json.Marshal(v)
		fmt.Printf("CROWD %s\n", j)
	}
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		res := crowdResult{Codes: map[int]int{}, Attempts: map[int]int{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, d := range drivers {
			wg.Go(func() {
				<-start
				if in.Text() == "floor" {
					if _, err := d.do("GET", "/healthz", nil, nil); err != nil {
						t.Error(err)
					}
					return
				}
				var r reply
				for attempt := 0; ; attempt++ {
					t0 := time.Now()
					var err error
					r, err = d.do("POST", "/v1/reservations", hold(cfg.Hot, fmt.Sprintf("HOT%05d", i), cfg.Base, cfg.Base.Add(3*time.Hour)), key(fmt.Sprint("hot-", i)))
					took := time.Since(t0)
					if err != nil {
						t.Error(err) // counted below as status 0
					}
					mu.Lock()
					res.All = append(res.All, took)
					if r.Status == 201 {
						res.Accepted = append(res.Accepted, took)
					}
					res.Attempts[r.Status]++
					mu.Unlock()
					if r.Status != 429 || attempt == 20 {
						break
					}
					time.Sleep(time.Second + time.Duration(mrand.IntN(1000))*time.Millisecond)
				}
				mu.Lock()
				res.Codes[r.Status]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		say(res)
	}
}
