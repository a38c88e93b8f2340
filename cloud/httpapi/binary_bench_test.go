package httpapi_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/promtext"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"github.com/parkgate/parkgate/internal/testkit/rediskeys"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
	"github.com/redis/go-redis/v9"
)

// BenchmarkBinary measures holds as a user meets them: bin/parkcloud serve
// in its own process, default configuration but for the rate limits (lifted
// so they do not cap the figure, still asked of Redis on every hold), and
// this process as the load generator over loopback: 16 clients, holds
// spread over 100 lots, each in its own window, each with its own key. Its
// modes:
//
//	guard-off   REDIS_URL= (no hot-lot guard), payments off
//	guard-on    the default Redis guard, payments off
//	stand-in    the default Redis guard, Checkout at a local Stripe stand-in
//	stand-in-tls  the same over TLS and HTTP/2, as parkcloud talks to
//	            Stripe (not in the default modes: BENCH_MODES=…,stand-in-tls)
//
// PARKCLOUD_BIN names the binaries to compare, "label=path,label=path"
// (default: this tree's, built here); BENCH_ROUNDS (default 1) repeats the
// modes and binaries in turn, so that a comparison is made of alternating
// runs in one session, each binary going first every other round; BENCH_MODES picks modes; BENCH_N sets the holds per
// run (default 8,000); BENCH_SLICES (default 8) how many slices a round's
// holds are cut into, the modes and binaries (up to maxSliced of them)
// taking turns slice by slice (runSliced), or 1 for one whole run after
// another; BENCH_HISTORY the past reservations per spot the
// lots start with (default 10, see prefillHistory). pgbench runs once, after the first round, for the
// ratio, unless BENCH_PGBENCH=off (when counting the database's own work
// per hold, which pgbench's would swamp). BENCH_PPROF=DIR saves a 5 s CPU profile of each run's server
// taken mid-run (the binary must have the PARKGATE_PPROF_ADDR opt-in).
func BenchmarkBinary(b *testing.B) {
	bins := binaries(b)
	modes := strings.Split(envOr("BENCH_MODES", "guard-off,guard-on,stand-in"), ",")
	rounds, _ := strconv.Atoi(envOr("BENCH_ROUNDS", "1"))
	perRound, err := strconv.Atoi(envOr("BENCH_SLICES", "8"))
	if err != nil || perRound < 1 {
		b.Fatalf("BENCH_SLICES=%q: want a count of slices per round", os.Getenv("BENCH_SLICES"))
	}
	if servers := len(modes) * len(bins); perRound > 1 && servers > maxSliced {
		summary("%d modes × binaries would run at once, more than %d: the modes run one after another (BENCH_SLICES=1)", servers, maxSliced)
		perRound = 1
	}
	results := map[string][]binResult{}
	var order []string
	var pgbenchTPS float64
	for round := range max(rounds, 1) {
		// The binaries take turns going first (ABBA): in an A/A run of one
		// binary under two labels the second did 3% better.
		turn := slices.Clone(bins)
		if round%2 == 1 {
			slices.Reverse(turn)
		}
		record := func(name string, r binResult) {
			if _, ok := results[name]; !ok {
				order = append(order, name)
			}
			results[name] = append(results[name], r)
		}
		pgbenchOnce := func(b *testing.B, bd *bundle) {
			if pgbenchTPS == 0 && round == 0 && os.Getenv("BENCH_PGBENCH") != "off" {
				if inv := pgbenchRatio(b, bd, 1); inv > 0 {
					pgbenchTPS = 1 / inv
				}
			}
		}
		if perRound > 1 {
			b.Run(fmt.Sprintf("slices/round%d", round), func(b *testing.B) {
				rs := runSliced(b, modes, turn, perRound)
				for _, nr := range rs {
					record(nr.name, nr.r)
				}
				pgbenchOnce(b, rs[len(rs)-1].r.bd)
			})
			continue
		}
		for _, mode := range modes {
			for _, bin := range turn {
				name := mode + "/" + bin.label
				b.Run(fmt.Sprintf("%s/round%d", name, round), func(b *testing.B) {
					r := runBinary(b, bin, mode)
					record(name, r)
					if mode == modes[len(modes)-1] && bin == bins[len(bins)-1] {
						pgbenchOnce(b, r.bd)
					}
					if pgbenchTPS > 0 {
						b.ReportMetric(r.holds/pgbenchTPS, "ratio_vs_pgbench")
					}
				})
			}
		}
	}
	// The summary: medians over the rounds, and the ratios the goals name.
	med := map[string]binResult{}
	for _, name := range order {
		med[name] = medianResult(results[name])
		m := med[name]
		summary("%-28s %6.0f holds/s  p50 %5.1f ms  p99 %5.1f ms  (median of %d)%s", name, m.holds, ms(m.p50), ms(m.p99),
			len(results[name]), m.redisLine())
	}
	if pgbenchTPS > 0 {
		summary("pgbench %.0f tps: ratios %s", pgbenchTPS, ratios(order, med, pgbenchTPS))
	}
	for _, bin := range bins {
		off, on, fake := med["guard-off/"+bin.label], med["guard-on/"+bin.label], med["stand-in/"+bin.label]
		if off.holds > 0 && on.holds > 0 {
			summary("%s: guard on / guard off = %.2f (goal >= 0.8)%s", bin.label, on.holds/off.holds,
				byRound(results["guard-on/"+bin.label], results["guard-off/"+bin.label]))
		}
		if on.holds > 0 && fake.holds > 0 {
			summary("%s: stand-in / payments off = %.2f (goal >= 0.7)%s", bin.label, fake.holds/on.holds,
				byRound(results["stand-in/"+bin.label], results["guard-on/"+bin.label]))
		}
		if on.serverCPU() > 0 && fake.serverCPU() > 0 {
			summary("%s: server CPU per hold (parkcloud + Postgres + Redis), payments off / stand-in = %v / %v = %.2f%s",
				bin.label, on.serverCPU().Round(time.Microsecond), fake.serverCPU().Round(time.Microsecond),
				float64(on.serverCPU())/float64(fake.serverCPU()),
				byRoundOf(results["guard-on/"+bin.label], results["stand-in/"+bin.label],
					func(r binResult) float64 { return float64(r.serverCPU()) }))
		}
		if tls := med["stand-in-tls/"+bin.label]; on.holds > 0 && tls.holds > 0 {
			summary("%s: stand-in over TLS and HTTP/2 / payments off = %.2f%s", bin.label, tls.holds/on.holds,
				byRound(results["stand-in-tls/"+bin.label], results["guard-on/"+bin.label]))
		}
	}
}

// byRound is the ratio of a's holds/s to b's in each round and their
// median, when there are several rounds. A round's two runs were made
// minutes apart, so their ratio escapes most of the box's drift, which
// moves every absolute figure (and with them the ratio of the medians) by
// more than the goals' margins: three rounds of one binary gave 0.66 to
// 0.96 (README, Performance).
func byRound(a, b []binResult) string {
	return byRoundOf(a, b, func(r binResult) float64 { return r.holds })
}

// byRoundOf is byRound of another figure than holds/s.
func byRoundOf(a, b []binResult, of func(binResult) float64) string {
	n := min(len(a), len(b))
	if n < 2 {
		return ""
	}
	rs := make([]float64, n)
	parts := make([]string, n)
	for i := range n {
		rs[i] = of(a[i]) / of(b[i])
		parts[i] = fmt.Sprintf("%.2f", rs[i])
	}
	sorted := slices.Clone(rs)
	slices.Sort(sorted)
	return fmt.Sprintf("; by round %s, median %.2f", strings.Join(parts, " "), sorted[n/2])
}

// summary prints a line of the closing summary: a parent benchmark's own
// log is not shown once it has sub-benchmarks.
func summary(format string, args ...any) { fmt.Printf("BINARY "+format+"\n", args...) }

func ratios(order []string, med map[string]binResult, pgbenchTPS float64) string {
	var parts []string
	for _, name := range order {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, med[name].holds/pgbenchTPS))
	}
	return strings.Join(parts, ", ")
}

type binary struct{ label, path string }

func binaries(b *testing.B) []binary {
	spec := os.Getenv("PARKCLOUD_BIN")
	if spec == "" {
		path := filepath.Join(b.TempDir(), "parkcloud")
		out, err := exec.Command("go", "build", "-o", path, "../cmd/parkcloud").CombinedOutput()
		if err != nil {
			b.Fatalf("build parkcloud: %v\n%s", err, out)
		}
		return []binary{{"this", path}}
	}
	var bins []binary
	for _, item := range strings.Split(spec, ",") {
		label, path, ok := strings.Cut(item, "=")
		if !ok {
			label, path = filepath.Base(item), item
		}
		bins = append(bins, binary{label, path})
	}
	return bins
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type binResult struct {
	mode     string
	holds    float64
	p50, p99 time.Duration
	// Redis commands per hold during the timed part, by command, from
	// INFO commandstats (the shared Redis: other clients count too).
	redis map[string]float64
	// CPU the server process and Redis spent per hold (user+system), the
	// figure least moved by other load on the box.
	cpu, redisCPU time.Duration
	// CPU this process spent per hold: the load generator, and in the
	// stand-in mode the Stripe stand-in as well, so the difference
	// between the modes is the stand-in's share of the 2 cores.
	genCPU time.Duration
	// CPU the server's own Postgres backends spent per hold.
	pgCPU time.Duration
	// The relay's work per hold, from the server's /metrics: changes
	// published, and round trips of marks (0 where the binary predates
	// the metric).
	relayChanges, relayMarks float64
	// Holds per shared calm transaction (0 where the binary predates the
	// metric).
	calmBatch float64
	// The Checkout call's mean time as parkcloud timed it (the stand-in
	// modes; 0 where the binary predates the metric): the part of a
	// hold's latency spent away from the server.
	checkout time.Duration
	bd       *bundle
}

// serverCPU is the CPU per hold of what a lot operator runs: parkcloud,
// its Postgres backends and Redis; not the load generator, nor the
// stand-in, whose work is Stripe's in production. Where the box is the
// bound, payments off / stand-in of it is the share of a deployment's
// capacity that payments leave, free of the stand-in's own cost on these
// 2 cores: in session 18's runs the stand-in spent about as much CPU per
// hold as parkcloud's side of the Checkout call.
func (r binResult) serverCPU() time.Duration { return r.cpu + r.pgCPU + r.redisCPU }

func (r binResult) redisLine() string {
	cpu := fmt.Sprintf("  cpu/hold: parkcloud %v, postgres %v, redis %v, generator%s %v", r.cpu.Round(time.Microsecond),
		r.pgCPU.Round(time.Microsecond), r.redisCPU.Round(time.Microsecond), r.genLabel(), r.genCPU.Round(time.Microsecond))
	if r.calmBatch > 0 {
		cpu += fmt.Sprintf("  calm holds/tx %.1f", r.calmBatch)
	}
	if r.checkout > 0 {
		cpu += fmt.Sprintf("  checkout call %.2f ms", ms(r.checkout))
	}
	if r.relayChanges > 0 {
		cpu += fmt.Sprintf("  relay/hold: changes %.2f", r.relayChanges)
		if r.relayMarks > 0 {
			cpu += fmt.Sprintf(", mark round trips %.2f", r.relayMarks)
		}
	}
	if len(r.redis) == 0 {
		return cpu
	}
	var names []string
	var total float64
	for k, v := range r.redis {
		names = append(names, k)
		total += v
	}
	sort.Strings(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s  redis cmds/hold %.2f:", cpu, total)
	for _, k := range names {
		fmt.Fprintf(&sb, " %s %.2f", k, r.redis[k])
	}
	return sb.String()
}

func (r binResult) genLabel() string {
	if strings.HasPrefix(r.mode, "stand-in") {
		return "+stand-in"
	}
	return ""
}

func medianResult(rs []binResult) binResult {
	by := func(f func(binResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	m := rs[len(rs)/2]
	m.holds = by(func(r binResult) float64 { return r.holds })
	m.p50 = time.Duration(by(func(r binResult) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(by(func(r binResult) float64 { return float64(r.p99) }))
	m.cpu = time.Duration(by(func(r binResult) float64 { return float64(r.cpu) }))
	m.redisCPU = time.Duration(by(func(r binResult) float64 { return float64(r.redisCPU) }))
	m.genCPU = time.Duration(by(func(r binResult) float64 { return float64(r.genCPU) }))
	m.pgCPU = time.Duration(by(func(r binResult) float64 { return float64(r.pgCPU) }))
	m.relayChanges = by(func(r binResult) float64 { return r.relayChanges })
	m.relayMarks = by(func(r binResult) float64 { return r.relayMarks })
	m.calmBatch = by(func(r binResult) float64 { return r.calmBatch })
	m.checkout = time.Duration(by(func(r binResult) float64 { return float64(r.checkout) }))
	return m
}

// prefillHistory gives the lots the past a deployed cloud has, and has
// Postgres analyze it, as autovacuum would have: BENCH_HISTORY reservations
// per spot (default 10) that ended before now, COMPLETED or EXPIRED, each
// with its session (an EXPIRED one's closed at the provider, as the
// workers closed it when its hold ended: left open, every stand-in run
// spent itself asking the stand-in to close 5,000 sessions it never made,
// each refused and held back in provider_retries, beside the holds it
// measured), and 2 per spot CONFIRMED in the coming week with a key,
// which the holds' windows (from 48 hours on, one an hour per lot) pass
// beside. A fresh schema's empty, never analyzed tables are a state no
// lot is in after its first day, and Postgres plans for them otherwise:
// PL/pgSQL, for one, keeps a hold's generic plans over empty tables and
// plans every call afresh once they are full. BENCH_HISTORY=0 measures the
// empty schema, as before 2026-12-06.
func prefillHistory(b *testing.B, bd *bundle) {
	perSpot, err := strconv.Atoi(envOr("BENCH_HISTORY", "10"))
	if err != nil || perSpot < 0 {
		b.Fatalf("BENCH_HISTORY=%q: want a count of past reservations per spot", os.Getenv("BENCH_HISTORY"))
	}
	if perSpot == 0 {
		return
	}
	ctx := context.Background()
	pool := bd.schema.DB.Pool
	t0 := time.Now()
	if _, err := pool.Exec(ctx, `
		INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at,
		                          price_amount, currency, checkout_session_id, checkout_url, payment_intent_id,
		                          session_closed_at, checked_in_at, checked_out_at, created_at, updated_at)
		SELECT id, lot_id, spot_id, 'H' || lpad(n::text, 8, '0'), starts, starts + interval '2 hours',
		       CASE WHEN n % 10 = 0 THEN 'EXPIRED' ELSE 'COMPLETED' END,
		       starts - interval '1 day' + interval '10 minutes', 500, 'EUR',
		       'cs_hist_' || id, 'https://checkout.stripe.com/c/pay/cs_hist_' || id,
		       CASE WHEN n % 10 <> 0 THEN 'pi_hist_' || id END,
		       CASE WHEN n % 10 = 0 THEN starts - interval '1 day' + interval '11 minutes' END,
		       CASE WHEN n % 10 <> 0 THEN starts END, CASE WHEN n % 10 <> 0 THEN starts + interval '2 hours' END,
		       starts - interval '1 day', starts + interval '2 hours'
		  FROM (SELECT gen_random_uuid() AS id, s.lot_id, s.id AS spot_id, g * 100000 + s.id AS n,
		               now() - make_interval(hours => 3 * g + (s.id % 3)::int) AS starts
		          FROM spots s CROSS JOIN generate_series(1, $1) g) h`, perSpot); err != nil {
		b.Fatalf("history: %v", err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at,
		                          price_amount, currency, checkout_session_id, checkout_url, payment_intent_id)
		SELECT id, lot_id, spot_id, 'U' || lpad(n::text, 8, '0'), starts, starts + interval '2 hours', 'CONFIRMED',
		       now() + interval '10 minutes', 500, 'EUR', 'cs_next_' || id,
		       'https://checkout.stripe.com/c/pay/cs_next_' || id, 'pi_next_' || id
		  FROM (SELECT gen_random_uuid() AS id, s.lot_id, s.id AS spot_id, g * 100000 + s.id AS n,
		               date_trunc('hour', now()) + make_interval(hours => 1 + ((s.id * 37 + g * 59) % 168)::int) AS starts
		          FROM spots s CROSS JOIN generate_series(1, 2) g) h`); err != nil {
		b.Fatalf("upcoming bookings: %v", err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO idempotency_keys (key, request_hash, reservation_id, response_status, expires_at)
		SELECT 'hist-' || r.id, sha256(r.id::text::bytea), r.id, 201, now() + interval '20 hours'
		  FROM reservations r WHERE r.status = 'CONFIRMED'`); err != nil {
		b.Fatalf("history keys: %v", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE lots, spots, reservations, idempotency_keys`); err != nil {
		b.Fatalf("analyze: %v", err)
	}
	b.Logf("history: %d past reservations per spot, 2 upcoming, analyzed, in %v", perSpot, time.Since(t0).Round(time.Millisecond))
}

// vacuumCatalogs clears the system catalogs of the rows every run's schema
// leaves dead when it is dropped (some 40 tables, their columns, indexes
// and constraints), as autovacuum would. Where Postgres runs without it (this
// machine's CI configuration turns it off), they piled up over a session:
// 161,000 dead rows in pg_attribute for 643 live ones, and runs late in a
// session measured slower than the same binary early. The service's role
// owns its database, so it may vacuum the database's own catalogs.
func vacuumCatalogs(b *testing.B, bd *bundle) {
	_, err := bd.schema.DB.Pool.Exec(context.Background(), `VACUUM pg_catalog.pg_class, pg_catalog.pg_attribute,
		pg_catalog.pg_depend, pg_catalog.pg_type, pg_catalog.pg_constraint, pg_catalog.pg_index,
		pg_catalog.pg_attrdef, pg_catalog.pg_statistic, pg_catalog.pg_trigger, pg_catalog.pg_sequence`)
	if err != nil {
		b.Logf("vacuum the catalogs (the figures may drift over a session): %v", err)
	}
}

// dropNamespace deletes a run's keys from Redis. They would live for a day
// (a key's stored answer does), 8,400 a run.
func dropNamespace(b *testing.B, ns string) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	if _, err := rediskeys.Drop(context.Background(), rdb, ns); err != nil {
		b.Logf("drop Redis namespace %s: %v", ns, err)
	}
}

// freePort returns a loopback address nothing listens on now, for the
// server to bind (see proc.FreePort).
func freePort(b *testing.B) string {
	addr, err := proc.FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	return addr
}

// runBinary starts the binary in mode on a fresh schema, drives it, and
// stops it.
func runBinary(b *testing.B, bin binary, mode string) binResult {
	s := startServer(b, bin, mode)
	n := benchN(8000)
	s.profile(b, b.Name(), 500*time.Millisecond, 5*time.Second)
	s.drive(b, n, false)
	r := s.result(b)
	reportHolds(b, s.lat, s.codes, s.elapsed)
	b.Logf("%s", r.redisLine())
	return r
}

// runSliced measures the modes and binaries of one round together: each
// is started and warmed up at once, then they take turns in short slices
// of the round's holds, the order turning and reversing slice by slice,
// and each one's figures are summed over its slices. A ratio of two modes
// then compares runs interleaved within seconds, not made minutes apart:
// the box's drift, which moved a round's ratio by ±20% (README,
// Performance), falls on both alike. The servers wait idle while the
// others are driven (up to maxSliced of them).
func runSliced(b *testing.B, modes []string, bins []binary, parts int) []namedResult {
	var out []namedResult
	var servers []*binServer
	for _, mode := range modes {
		for _, bin := range bins {
			out = append(out, namedResult{name: mode + "/" + bin.label})
			servers = append(servers, startServer(b, bin, mode))
		}
	}
	checkConnections(b, servers[0].bd)
	n := benchN(8000)
	for i, s := range servers {
		s.profile(b, b.Name()+"/"+out[i].name, 500*time.Millisecond, time.Duration(5*len(servers))*time.Second)
	}
	turn := make([]int, len(servers))
	for k := range parts {
		for j := range turn {
			turn[j] = (j + k) % len(turn)
		}
		if k%2 == 1 {
			slices.Reverse(turn)
		}
		for _, i := range turn {
			servers[i].drive(b, n*(k+1)/parts-n*k/parts, true)
		}
	}
	for i, s := range servers {
		r := s.result(b)
		out[i].r = r
		b.Logf("%-24s %6.0f holds/s  p50 %5.1f ms  p99 %5.1f ms  over %d slices%s", out[i].name, r.holds, ms(r.p50), ms(r.p99), parts, r.redisLine())
	}
	return out
}

// sliceWarmUp is the holds each slice makes before it is timed: two per
// driver.
const sliceWarmUp = 32

type namedResult struct {
	name string
	r    binResult
}

// maxSliced is the most servers runSliced starts at once: each keeps 20
// Postgres connections open (the default pool, MinConns = MaxConns), and
// three with the harness' and pgbench's fit in the 100 that Postgres
// allows by default.
const maxSliced = 3

// checkConnections fails when the servers' pools, the harness' and the
// pgbench to come leave less than a margin of this Postgres'
// max_connections, rather than have pgbench or a pool fail mid-run.
func checkConnections(b *testing.B, bd *bundle) {
	var open, max int
	if err := bd.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity`).Scan(&open, &max); err != nil {
		b.Fatalf("max_connections: %v", err)
	}
	if need := open + 16 + 5; need > max {
		b.Fatalf("the servers hold %d Postgres connections, and pgbench would take 16 more; max_connections is %d: name fewer modes or binaries, or BENCH_SLICES=1", open, max)
	}
}

// schemaSQL applies to a server's schema, after the migrations and before
// its lots are made, the file BENCH_SQL names for its binary's label
// ("label=file.sql,…"): one binary under two labels then compares two
// schemas in one run, the way to try an index or a key on the shipped
// binary before making it a migration (bench-hold-sql does the same for
// parkgate_hold alone). Not for the PL/pgSQL functions: the binary
// creates its own as it starts.
func schemaSQL(b *testing.B, bd *bundle, label string) {
	spec := os.Getenv("BENCH_SQL")
	if spec == "" {
		return
	}
	for _, item := range strings.Split(spec, ",") {
		l, file, ok := strings.Cut(item, "=")
		if !ok {
			b.Fatalf("BENCH_SQL=%q: want label=file.sql,…", spec)
		}
		if l != label {
			continue
		}
		sql, err := os.ReadFile(file)
		if err != nil {
			b.Fatalf("BENCH_SQL: %v", err)
		}
		if _, err := bd.schema.DB.Pool.Exec(context.Background(), string(sql)); err != nil {
			b.Fatalf("BENCH_SQL: apply %s to %s's schema: %v", file, label, err)
		}
		b.Logf("%s: applied %s to its schema", label, file)
	}
}

// binServer is one bin/parkcloud serve under test: on its own schema and
// Redis namespace, warmed up, with its drivers connected. It may be driven
// in several slices, between which other servers are driven (BENCH_SLICES):
// what it did is summed over its slices, CPU per process, so that the
// work a server leaves running after a slice counts to it, not to the
// server driven next.
type binServer struct {
	mode, app string
	pid       int
	base      string
	pprofAddr string
	bd        *bundle
	lots      []string
	conns     []*driverConn
	rdb       *redis.Client
	start     time.Time // the first hold's window
	next      int       // the index of the next hold
	m0        map[string]float64

	lat     *latencies
	codes   map[int]int
	elapsed time.Duration
	holds   int
	// Summed over the slices: CPU of the server, its Postgres backends,
	// Redis and this process, and Redis' calls by command.
	cpu, pgCPU, redisCPU, genCPU time.Duration
	redisCalls                   map[string]int64
	prof                         sync.WaitGroup
}

// startServer starts the binary in mode on a fresh schema with 100 lots
// that have a past, connects 16 drivers and warms it up.
func startServer(b *testing.B, bin binary, mode string) *binServer {
	bd := setup(b)
	schemaSQL(b, bd, bin.label)
	lots := make([]string, 100)
	for i := range lots {
		lots[i] = bd.createLot(b, 50)
	}
	prefillHistory(b, bd)
	vacuumCatalogs(b, bd)
	var ns [4]byte
	_, _ = rand.Read(ns[:])
	// The run's name: its Redis namespace and its backends' application_name.
	app := "binbench-" + hex.EncodeToString(ns[:])
	b.Cleanup(func() { dropNamespace(b, app) })
	addr, pprofAddr := freePort(b), freePort(b)
	env := append(os.Environ(),
		// Named, so that its Postgres backends can be found and their CPU
		// counted (pgBackendCPU).
		"DATABASE_URL="+bd.schema.URL+"&application_name="+app,
		"PARKGATE_HTTP_ADDR="+addr,
		"PARKGATE_REDIS_NAMESPACE="+app,
		// Lifted, not off: "off" would skip the limits' Redis calls.
		"PARKGATE_LOT_RATE=1000000/1000000",
		"PARKGATE_CLIENT_RATE=1000000/1000000",
		"PARKGATE_PPROF_ADDR="+pprofAddr,
		"STRIPE_SECRET_KEY=", "STRIPE_WEBHOOK_SECRET=",
	)
	switch mode {
	case "guard-off":
		env = append(env, "REDIS_URL=")
	case "guard-on":
		env = append(env, "REDIS_URL=redis://127.0.0.1:6379/0")
	case "stand-in", "stand-in-tls":
		fake := stripefake.New(stripefake.Options{})
		fsrv := httptest.NewUnstartedServer(fake)
		b.Cleanup(func() { fsrv.Close(); fake.Close() })
		env = append(env, "REDIS_URL=redis://127.0.0.1:6379/0", "STRIPE_SECRET_KEY=sk_test_bench",
			"STRIPE_WEBHOOK_SECRET=whsec_bench")
		if mode == "stand-in" {
			fsrv.Start()
		} else {
			fsrv.EnableHTTP2 = true
			fsrv.StartTLS()
			// parkcloud trusts the stand-in's certificate through Go's
			// own SSL_CERT_FILE, as it would a private CA's.
			ca := filepath.Join(b.TempDir(), "stand-in.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fsrv.Certificate().Raw}), 0o600); err != nil {
				b.Fatal(err)
			}
			env = append(env, "SSL_CERT_FILE="+ca)
		}
		env = append(env, "STRIPE_API_BASE="+fsrv.URL)
	default:
		b.Fatalf("unknown mode %q", mode)
	}
	cmd := exec.Command(bin.path, "serve")
	cmd.Env = env
	logf, err := os.Create(filepath.Join(b.TempDir(), "parkcloud.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr, cmd.Stdout = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = logf.Close()
	})
	s := &binServer{mode: mode, app: app, pid: cmd.Process.Pid, base: "http://" + addr, pprofAddr: pprofAddr,
		bd: bd, lots: lots, start: time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC(),
		lat: &latencies{}, codes: map[int]int{}, redisCalls: map[string]int64{}}
	waitReady(b, s.base, logf.Name())

	// 16 clients, each on its own keep-alive connection, as loadgen's
	// drivers: the generator must stay cheap next to the server it measures.
	s.conns = make([]*driverConn, 16)
	for i := range s.conns {
		s.conns[i] = dialDriver(b, s.base)
		b.Cleanup(s.conns[i].close)
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	b.Cleanup(func() { _ = s.rdb.Close() })
	// Warm up: every lot read once, connections and pools filled.
	warm := map[int]int{}
	s.send(400, nil, warm)
	if warm[201] != 400 {
		b.Fatalf("warm-up statuses %v", warm)
	}
	s.m0 = scrapeMetrics(b, s.base)
	return s
}

// send makes the next n holds over the drivers, each lot in turn, each in
// a window of its own, and returns how long they took.
func (s *binServer) send(n int, lat *latencies, codes map[int]int) time.Duration {
	from := s.next
	s.next += n
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, d := range s.conns {
		wg.Add(1)
		go func(d *driverConn) {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				i := from + k
				w := s.start.Add(time.Duration(i/len(s.lots)) * time.Hour)
				t := time.Now()
				r, err := d.do("POST", "/v1/reservations", hold(s.lots[i%len(s.lots)], fmt.Sprintf("B%07d", i), w, w.Add(time.Hour)),
					key(fmt.Sprint("bin-", i)))
				el := time.Since(t)
				mu.Lock()
				if err != nil {
					codes[-1]++
				} else {
					codes[r.Status]++
				}
				mu.Unlock()
				if lat != nil {
					lat.add(el)
				}
			}
		}(d)
	}
	wg.Wait()
	return time.Since(t0)
}

// drive makes n holds as one timed slice, adding its time and the CPU
// each part spent to the server's sums. A slice after another server's
// starts with holds it neither times nor counts (sliceWarmUp): its 16
// drivers' first requests reach an idle server at once, a burst the
// steady state does not have, and in a slice of 1,500 holds those 16 are
// more than the 1% that p99 is made of. (Whether they are slower was not
// measured: sliced and whole runs, alternating, showed the same p99.)
func (s *binServer) drive(b *testing.B, n int, warmUp bool) {
	if warmUp {
		codes := map[int]int{}
		s.send(sliceWarmUp, nil, codes)
		if codes[201] != sliceWarmUp {
			b.Fatalf("%s: slice warm-up statuses %v", s.mode, codes)
		}
	}
	before, cpu0, rcpu0, gcpu0 := commandStats(s.rdb), procCPU(s.pid), redisCPU(s.rdb), procCPU(os.Getpid())
	pg0 := pgBackendCPU(s.bd, s.app)
	s.elapsed += s.send(n, s.lat, s.codes)
	s.holds += n
	after, cpu1, rcpu1, gcpu1 := commandStats(s.rdb), procCPU(s.pid), redisCPU(s.rdb), procCPU(os.Getpid())
	s.pgCPU += cpuSince(pg0, pgBackendCPU(s.bd, s.app))
	s.cpu += cpu1 - cpu0
	s.redisCPU += rcpu1 - rcpu0
	s.genCPU += gcpu1 - gcpu0
	for k, v := range after {
		if d := v - before[k]; d > 0 && k != "info" {
			s.redisCalls[k] += d
		}
	}
}

// profile saves, when BENCH_PPROF names a directory, a CPU profile of the
// server taken for length after a delay, in the background (result waits
// for it).
func (s *binServer) profile(b *testing.B, name string, delay, length time.Duration) {
	dir := os.Getenv("BENCH_PPROF")
	if dir == "" {
		return
	}
	s.prof.Add(1)
	go func() {
		defer s.prof.Done()
		time.Sleep(delay) // into the steady state
		saveProfile(b, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprofAddr, int(length.Seconds())),
			filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".pprof"))
	}()
}

// result is what the server did over its slices, per hold.
func (s *binServer) result(b *testing.B) binResult {
	// The relay publishes after the holds are answered: let it finish.
	time.Sleep(300 * time.Millisecond)
	m1 := scrapeMetrics(b, s.base)
	s.prof.Wait()
	if s.codes[201] != s.holds {
		b.Errorf("%s: statuses %v", s.mode, s.codes)
	}
	if alone := m1["parkgate_calm_holds_alone_total"] - s.m0["parkgate_calm_holds_alone_total"]; alone > 0 {
		b.Logf("%s: %.0f calm holds found their lot busy and were made alone", s.mode, alone)
	}
	if other := otherStripeCalls(s.m0, m1); other != "" {
		b.Logf("%s: Stripe calls beside the holds' Checkout Sessions, on the same cores: %s", s.mode, other)
	}
	n := time.Duration(s.holds)
	res := binResult{mode: s.mode, holds: float64(s.codes[201]) / s.elapsed.Seconds(), p50: s.lat.pct(.5), p99: s.lat.pct(.99), bd: s.bd,
		cpu: s.cpu / n, redisCPU: s.redisCPU / n, genCPU: s.genCPU / n, pgCPU: s.pgCPU / n,
		relayChanges: (m1["parkgate_relay_published_total"] - s.m0["parkgate_relay_published_total"]) / float64(s.holds),
		relayMarks:   (m1["parkgate_relay_mark_group_size_count"] - s.m0["parkgate_relay_mark_group_size_count"]) / float64(s.holds)}
	if tx := m1["parkgate_calm_batch_holds_count"] - s.m0["parkgate_calm_batch_holds_count"]; tx > 0 {
		res.calmBatch = (m1["parkgate_calm_batch_holds_sum"] - s.m0["parkgate_calm_batch_holds_sum"]) / tx
	}
	const checkout = `parkgate_stripe_call_seconds_%s{op="create_checkout_session",outcome="ok"}`
	sum, count := fmt.Sprintf(checkout, "sum"), fmt.Sprintf(checkout, "count")
	if n := m1[count] - s.m0[count]; n > 0 {
		res.checkout = time.Duration((m1[sum] - s.m0[sum]) / n * float64(time.Second))
	}
	if s.mode != "guard-off" {
		res.redis = map[string]float64{}
		for k, v := range s.redisCalls {
			res.redis[k] = float64(v) / float64(s.holds)
		}
	}
	return res
}

// otherStripeCalls lists the Stripe calls between two scrapes other than
// the holds' own (a worker's, say, closing sessions the lots' history left
// open), by series, or "" when there were none: such work shares the box
// with what the run measures.
func otherStripeCalls(m0, m1 map[string]float64) string {
	const prefix = "parkgate_stripe_call_seconds_count{"
	var out []string
	for k, v := range m1 {
		if !strings.HasPrefix(k, prefix) || k == prefix+`op="create_checkout_session",outcome="ok"}` {
			continue
		}
		if d := v - m0[k]; d > 0 {
			out = append(out, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "parkgate_stripe_call_seconds_count"), d))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// scrapeMetrics reads the server's samples by series.
func scrapeMetrics(b *testing.B, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	m, err := promtext.Series(resp.Body)
	if err != nil {
		b.Fatalf("metrics: %v", err)
	}
	return m
}

func waitReady(b *testing.B, base, logName string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(logName)
	b.Fatalf("parkcloud did not come up in 30s:\n%s", out)
}

// commandStats reads INFO commandstats: calls by command.
func commandStats(rdb *redis.Client) map[string]int64 {
	out := map[string]int64{}
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "cmdstat_")
		if !ok {
			continue
		}
		name, rest, _ := strings.Cut(line, ":")
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// procCPU is the user+system CPU time of process pid so far.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: count fields after its ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// pgBackendCPU is the CPU time so far of each Postgres backend serving
// connections named app, by pid. The backends must be on this machine, as
// the benchmark's are.
func pgBackendCPU(bd *bundle, app string) map[int32]time.Duration {
	out := map[int32]time.Duration{}
	var pids []int32
	err := bd.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&pids)
	if err != nil {
		return out
	}
	for _, pid := range pids {
		out[pid] = procCPU(int(pid))
	}
	return out
}

// cpuSince is what the backends spent between two pgBackendCPU readings;
// one that started in between counts in full (the pool opens its
// connections in the warm-up, so that is rare).
func cpuSince(before, after map[int32]time.Duration) time.Duration {
	var total time.Duration
	for pid, c := range after {
		total += c - before[pid]
	}
	return total
}

// redisCPU is Redis' used_cpu_user+used_cpu_sys so far (the shared Redis:
// other clients' work counts too).
func redisCPU(rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		for _, k := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

func saveProfile(b *testing.B, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Logf("pprof: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Logf("pprof: %s (does the binary have PARKGATE_PPROF_ADDR?)", resp.Status)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Logf("pprof: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.ReadFrom(resp.Body); err != nil {
		b.Logf("pprof: %v", err)
	}
	b.Logf("cpu profile: %s", path)
}
