package httpapi_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

// leasedOptions give leases of 12 (client) and 6 (lot) that outlive a
// test (a token a second: 12 and 6 s): the first request takes them, the
// next ones find tokens here. The calls have the guard tests' timeout.
var leasedOptions = guard.Options{OpTimeout: 5 * time.Second,
	ClientRate: guard.Limit{Rate: 1, Burst: 200}, LotRate: guard.Limit{Rate: 1, Burst: 100}}

// TestLeasedRetry: on a calm lot, a request this replica holds leased
// tokens of both limits for asks Redis nothing before its write. A retry
// on that path is answered by Postgres, as the first answer byte for byte,
// and the Checkout Session made for it, which nobody is given, is expired
// at the provider; while Postgres cannot answer, the retry gets Redis'
// copy of the answer instead of a 503, as on the other paths.
func TestLeasedRetry(t *testing.T) {
	t.Parallel()
	g, _, _ := testGuardWith(t, "leased", leasedOptions)
	b := setupPaymentsLimited(t, 10*time.Minute, g, true, true)
	lot := b.createLot(t, 3)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	// A first hold makes the lot known here and takes the leases.
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "LEASE0", start, start.Add(time.Hour)), key("leased-0")); r.Status != 201 {
		t.Fatalf("first hold: %d %s", r.Status, r.Body)
	}
	body := hold(lot, "LEASE1", start, start.Add(time.Hour))
	first := b.do(t, "POST", "/v1/reservations", body, key("leased-1"))
	if first.Status != 201 {
		t.Fatalf("hold: %d %s", first.Status, first.Body)
	}

	again := b.do(t, "POST", "/v1/reservations", body, key("leased-1"))
	if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("retry: %d %s\nfirst: %s", again.Status, again.Body, first.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.expiredSessions() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions expired after the retry; want the retry's own (%d sessions in all)", b.expiredSessions(), len(b.fake.Sessions()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pending int
	if err := b.schema.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reservations WHERE status = 'PENDING'`).Scan(&pending); err != nil || pending != 2 {
		t.Fatalf("%d holds after the retry (%v); want the two", pending, err)
	}

	b.proxy.Cut()
	defer b.proxy.Restore()
	during := b.do(t, "POST", "/v1/reservations", body, key("leased-1"))
	if during.Status != 201 || during.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(during.Body, first.Body) {
		t.Errorf("retry while Postgres is away: %d %s\nfirst: %s", during.Status, during.Body, first.Body)
	}
	other := b.do(t, "POST", "/v1/reservations", hold(lot, "LEASE2", start, start.Add(time.Hour)), key("leased-2"))
	if other.Status != 503 || other.code() != "unavailable" {
		t.Errorf("a new hold while Postgres is away: %d %s; want 503 unavailable", other.Status, other.Body)
	}
}

// TestLeasedFullLot: a lot that answered a window full stays off the
// leased path for a while, so its later requests learn the window is full
// from Redis' cache: with payments on, they cost no Checkout Session made
// and thrown away, as a request on leased tokens would.
func TestLeasedFullLot(t *testing.T) {
	t.Parallel()
	g, _, _ := testGuardWith(t, "leasedfull", leasedOptions)
	b := setupPaymentsLimited(t, 10*time.Minute, g, false, true)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	other := start.Add(24 * time.Hour)
	// The lot known, the leases taken, then the one spot held.
	for i, at := range []time.Time{other, start} {
		if r := b.do(t, "POST", "/v1/reservations", hold(lot, fmt.Sprint("FULL", i), at, at.Add(time.Hour)), key(fmt.Sprint("full-", i))); r.Status != 201 {
			t.Fatalf("hold %d: %d %s", i, r.Status, r.Body)
		}
	}
	refused := func(n int) {
		t.Helper()
		r := b.do(t, "POST", "/v1/reservations", hold(lot, fmt.Sprint("LATE", n), start, start.Add(time.Hour)), key(fmt.Sprint("late-", n)))
		if r.Status != 409 || r.code() != "no_availability" {
			t.Fatalf("hold %d of the full window: %d %s", n, r.Status, r.Body)
		}
	}
	refused(0) // on leased tokens: its session is made, then expired
	refused(1) // the lot in a rush: Redis' path, and the cache learns it is full
	// Past the rush, the lot would take the leased path again, a session
	// for each driver told 409.
	time.Sleep(2200 * time.Millisecond)
	for n := 2; n < 5; n++ {
		refused(n)
	}
	time.Sleep(200 * time.Millisecond) // a discard runs after the answer
	if expired := b.expiredSessions(); expired != 1 {
		t.Errorf("%d Checkout Sessions made and expired for drivers told 409; want the first's only", expired)
	}
}

// expiredSessions counts the Checkout Sessions expired at the stand-in.
func (b *payBundle) expiredSessions() int {
	n := 0
	for _, s := range b.fake.Sessions() {
		if s.Status == "expired" {
			n++
		}
	}
	return n
}
