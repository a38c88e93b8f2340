package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/internal/testkit/rediskeys"
)

// TestLeasedRetry: on a calm lot, a request this replica holds leased
// tokens of both limits for asks Redis nothing before its write. A retry
// on that path is answered by Postgres, as the first answer byte for byte,
// and the Checkout Session made for it, which nobody is given, is expired
// at the provider; while Postgres cannot answer, the retry gets Redis'
// copy of the answer instead of a 503, as on the other paths.
func TestLeasedRetry(t *testing.T) {
	t.Parallel()
	rdb, err := guard.NewClient("redis://127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	ns := fmt.Sprintf("leased-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = rediskeys.Drop(ctx, rdb, ns)
	})
	// Leases of 12 (client) and 6 (lot): the first request takes one,
	// the next ones find tokens here.
	g := guard.New(rdb, guard.Options{Namespace: ns, ClientRate: guard.Limit{Rate: 100, Burst: 200}, LotRate: guard.Limit{Rate: 50, Burst: 100}})
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
	expired := func() int {
		n := 0
		for _, s := range b.fake.Sessions() {
			if s.Status == "expired" {
				n++
			}
		}
		return n
	}

	again := b.do(t, "POST", "/v1/reservations", body, key("leased-1"))
	if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("retry: %d %s\nfirst: %s", again.Status, again.Body, first.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for expired() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions expired after the retry; want the retry's own (%d sessions in all)", expired(), len(b.fake.Sessions()))
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
