package failover_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/parkgate/parkgate/deploy/failover"
	"github.com/parkgate/parkgate/internal/testkit/patroni"
	"github.com/parkgate/parkgate/internal/testkit/pgserver"
	"github.com/parkgate/parkgate/internal/testkit/sentinel"
)

// duration is DRILL_DURATION: 0 (the short drill, one failover) or how
// long to keep failing over, the killed node back in between.
func duration(t *testing.T) time.Duration {
	v := os.Getenv("DRILL_DURATION")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("DRILL_DURATION=%q: %v", v, err)
	}
	return d
}

// ensure installs the drill's packages with deploy/drill.sh when they are
// missing and this is root, and skips, saying why, only when that fails.
func ensure(t *testing.T, available func() error) {
	t.Helper()
	if available() == nil {
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("%v (and not root, so deploy/drill.sh cannot install it)", available())
	}
	out, err := exec.Command("bash", "../drill.sh").CombinedOutput()
	if err != nil {
		t.Skipf("deploy/drill.sh could not install the drill's packages: %v\n%s", err, out)
	}
	if err := available(); err != nil {
		t.Skipf("%v, even after deploy/drill.sh:\n%s", err, out)
	}
}

// binary is PARKCLOUD_BIN, or this tree's parkcloud built now.
func binary(t *testing.T) string {
	if b := os.Getenv("PARKCLOUD_BIN"); b != "" {
		return b
	}
	path := filepath.Join(t.TempDir(), "parkcloud")
	out, err := exec.Command("go", "build", "-o", path, "../../cloud/cmd/parkcloud").CombinedOutput()
	if err != nil {
		t.Fatalf("build parkcloud: %v\n%s", err, out)
	}
	return path
}

type drill struct {
	cloud *failover.Cloud
	load  *failover.Load
	stop  func()
}

func startDrill(t *testing.T, databaseURL, redisURL string) *drill {
	t.Helper()
	c, err := failover.StartCloud(binary(t), databaseURL, redisURL, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			log := c.Log()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("parkcloud log (tail):\n%s", log)
			// The tail is the last failover's 503s; a hold refused by
			// the payment provider may be far before it.
			n := 0
			for line := range strings.Lines(c.Log()) {
				if strings.Contains(line, "checkout session failed") && n < 10 {
					t.Logf("parkcloud log: %s", strings.TrimSpace(line))
					n++
				}
			}
		}
	})
	var lots []string
	for i := range 4 {
		id, err := c.CreateLot(fmt.Sprintf("Drill %d", i), 50)
		if err != nil {
			t.Fatal(err)
		}
		lots = append(lots, id)
	}
	load := &failover.Load{Cloud: c, Lots: lots, Spots: 50, Workers: 4,
		Start: time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { load.Run(ctx); close(done) }()
	return &drill{cloud: c, load: load, stop: func() { cancel(); <-done }}
}

// confirmedBy returns the ids of holds a client had read CONFIRMED by at.
func confirmedBy(holds []failover.Hold, at time.Time) []string {
	var ids []string
	for _, h := range holds {
		if !h.ConfirmedAt.IsZero() && !h.ConfirmedAt.After(at) {
			ids = append(ids, h.ID)
		}
	}
	return ids
}

// waitOK waits until the load has a hold answered 201 after at.
func waitOK(t *testing.T, l *failover.Load, at time.Time, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r := l.Measure(at); !r.FirstOKAfter.IsZero() {
			return r.FirstOKAfter
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no hold answered 201 within %v of the failover", within)
	return time.Time{}
}

// verify checks, on the database at url, that every hold a client was
// answered 201 exists and every booking a client read CONFIRMED is still
// CONFIRMED; and that the answers were 201, 503, or 409 for a key still
// in flight.
func verify(t *testing.T, url string, d *drill, firstKill time.Time) failover.Report {
	t.Helper()
	if left := d.load.Settle(90 * time.Second); left > 0 {
		t.Errorf("%d paid holds never read CONFIRMED", left)
	}
	holds := d.load.Holds()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var all, confirmed []string
	for _, h := range holds {
		all = append(all, h.ID)
		if !h.ConfirmedAt.IsZero() {
			confirmed = append(confirmed, h.ID)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE id = ANY($1::uuid[])`, all).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(all) {
		t.Errorf("%d of %d holds answered 201 are in the database: %d lost", n, len(all), len(all)-n)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE status = 'CONFIRMED' AND id = ANY($1::uuid[])`,
		confirmed).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(confirmed) {
		t.Errorf("%d of %d bookings a client read CONFIRMED are CONFIRMED in the database: %d lost", n, len(confirmed), len(confirmed)-n)
	}
	before := confirmedBy(holds, firstKill)
	if len(before) == 0 {
		t.Error("no booking was CONFIRMED before the first failover: the drill proved nothing about them")
	}
	rep := d.load.Measure(firstKill)
	t.Logf("holds answered 201: %d, all in the database; CONFIRMED read by clients: %d (%d before the first kill), all CONFIRMED in the database",
		len(all), len(confirmed), len(before))
	for k := range rep.Other {
		// A first attempt cut off by the failover leaves its key marked in
		// flight until the marker's lease ends: the client is told so and
		// retries, as the API contract says. Anything else is a fault.
		if k != "409 idempotency_key_in_use" {
			t.Errorf("unexpected answers %q: %d (only 201, 503 and 409 idempotency_key_in_use are expected)", k, rep.Other[k])
		}
	}
	return rep
}

// TestPostgresFailover: parkcloud on a multi-host DATABASE_URL
// (target_session_attrs=read-write) in front of a Patroni pair in
// synchronous mode; under load the primary's node is killed (Patroni and
// every PostgreSQL process, SIGKILL). Patroni promotes the synchronous
// standby; parkcloud answers 503 meanwhile, never 500, then carries on by
// itself; no hold answered 201 and no booking a client read CONFIRMED is
// lost.
func TestPostgresFailover(t *testing.T) {
	ensure(t, patroni.Available)
	long := duration(t)
	c := patroni.Start(t, patroni.Options{})
	d := startDrill(t, c.URL(), "redis://127.0.0.1:6379/0")
	began := time.Now()
	var firstKill time.Time
	var last *patroni.Node
	for round := 0; ; round++ {
		time.Sleep(4 * time.Second) // load on the healthy pair
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		old, err := c.WaitLeader(ctx, "")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		kill := time.Now()
		if firstKill.IsZero() {
			firstKill = kill
		}
		if err := old.Kill(); err != nil {
			cancel()
			t.Fatal(err)
		}
		leader, err := c.WaitLeader(ctx, old.Name)
		cancel()
		if err != nil {
			t.Fatalf("%v\n%s", err, c.Logs())
		}
		promoted := time.Since(kill)
		ok := waitOK(t, d.load, kill, 90*time.Second)
		r := d.load.Measure(kill)
		t.Logf("round %d: killed %s; %s promoted after %v; first 201 after %v; 503 from %v to %v after the kill",
			round, old.Name, leader.Name, promoted.Round(10*time.Millisecond), ok.Sub(kill).Round(10*time.Millisecond),
			sinceOr(r.First503, kill), sinceOr(r.Last503, kill))
		last = leader
		time.Sleep(3 * time.Second) // load on the survivor alone
		if time.Since(began) >= long {
			break
		}
		// The dead node comes back: Patroni rewinds it and it rejoins as
		// the synchronous standby, ready for the next round.
		if err := old.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 3*time.Minute)
		err = c.WaitSyncStandby(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%v\n%s", err, c.Logs())
		}
	}
	d.stop()
	rep := verify(t, last.URL(), d, firstKill)
	t.Logf("DRILL postgres: %s", rep)
	if rep.OK == 0 {
		t.Error("no hold succeeded")
	}
}

func sinceOr(at, from time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return at.Sub(from).Round(10 * time.Millisecond).String()
}

// TestRedisSentinelFailover: parkcloud's guard on REDIS_URL naming a
// Sentinel master; under load the master is killed (SIGKILL). The sentinels
// promote the replica; the guard follows it without a restart (readiness
// says redis ok again and the new master takes the guard's commands);
// meanwhile every hold is answered — Redis is a cache and a limiter, never
// the truth — and none is lost; a hold made before the failover replays to
// the same reservation after it.
func TestRedisSentinelFailover(t *testing.T) {
	ensure(t, sentinel.Available)
	if _, err := pgserver.BinDir(); err != nil {
		t.Skip(err.Error())
	}
	long := duration(t)
	pg := pgserver.Start(t)
	g := sentinel.Start(t, sentinel.Options{})
	d := startDrill(t, pg.URL(), g.URL())
	began := time.Now()
	var firstKill time.Time
	for round := 0; ; round++ {
		time.Sleep(4 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		kill := time.Now()
		if firstKill.IsZero() {
			firstKill = kill
		}
		old, err := g.KillMaster(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		now, err := g.WaitMaster(ctx, old)
		cancel()
		if err != nil {
			t.Fatalf("%v\n%s", err, g.Logs())
		}
		promoted := time.Since(kill)
		master := redis.NewClient(&redis.Options{Addr: now})
		cmds0 := processed(t, master)
		// The guard follows: readiness says redis ok, and the new master
		// takes the guard's commands.
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, body := d.cloud.Ready()
			if code == 200 && strings.Contains(body, `"redis":"ok"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the guard did not follow the new master within 60s: readyz %d %s", code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		followed := time.Since(kill)
		time.Sleep(3 * time.Second)
		cmds := processed(t, master) - cmds0
		master.Close()
		if cmds < 10 {
			t.Errorf("the new master %s took %d commands in the 3 s of load after the failover: the guard is not on it", now, cmds)
		}
		t.Logf("round %d: killed master %s; sentinels promoted %s after %v; guard ready on it after %v; it took %d commands in 3 s",
			round, old, now, promoted.Round(10*time.Millisecond), followed.Round(10*time.Millisecond), cmds)
		if time.Since(began) >= long {
			break
		}
		// The old master comes back empty; the sentinels make it a replica.
		if s := g.Server(old); s != nil {
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	d.stop()
	rep := verify(t, pg.URL(), d, firstKill)
	t.Logf("DRILL redis: %s", rep)
	if rep.Unavailable+rep.NoAnswer > 0 {
		t.Errorf("%d holds answered 503 and %d not at all while Redis failed over: the guard must fall back, not fail", rep.Unavailable, rep.NoAnswer)
	}
	// Idempotency survives the failover: Redis held only the fast path.
	holds := d.load.Holds()
	checked := 0
	for _, h := range holds {
		if !h.At.Before(firstKill) || checked == 20 {
			continue
		}
		checked++
		status, id, replayed, err := d.cloud.Replay(h)
		if err != nil || status != 201 || id != h.ID || !replayed {
			t.Errorf("replay of %s after the failover: %d %q replayed=%v %v; want 201 %q replayed", h.Key, status, id, replayed, err, h.ID)
		}
	}
	if checked == 0 {
		t.Error("no hold before the failover to replay")
	}
}

func processed(t *testing.T, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatalf("INFO on the new master: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}
