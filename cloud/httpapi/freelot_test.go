package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/cloud/stripepay"
	"github.com/parkgate/parkgate/internal/testkit/rediskeys"
	"github.com/redis/go-redis/v9"
)

// TestFreeLot (finding 3): a hold on a lot whose rate is 0 is CONFIRMED at
// once with "payment":null, asks Stripe nothing, and its change for the
// edge is an upsert, as a paid confirmation's.
func TestFreeLot(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	r := b.do(t, "POST", "/v1/lots", lotBody(func(m map[string]any) {
		m["hourly_rate"] = map[string]any{"amount": 0, "currency": "EUR"}
	}), admin())
	if r.Status != 201 {
		t.Fatalf("free lot: %d %s", r.Status, r.Body)
	}
	lot := r.json(t)["id"].(string)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	first := b.do(t, "POST", "/v1/reservations", hold(lot, "FREE1", start, start.Add(time.Hour)), key("free"))
	if first.Status != 201 {
		t.Fatalf("hold: %d %s", first.Status, first.Body)
	}
	m := first.json(t)
	if p, ok := m["payment"]; m["status"] != "CONFIRMED" || !ok || p != nil {
		t.Errorf("free hold: %s; want CONFIRMED with payment null", first.Body)
	}
	if n := len(b.fake.Sessions()); n != 0 {
		t.Errorf("%d Checkout Sessions for a free lot", n)
	}
	b.waitStatus(t, m["id"].(string), "CONFIRMED")
	var op, status string
	if err := b.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT op, status FROM outbox WHERE reservation_id = $1 ORDER BY seq DESC LIMIT 1`, m["id"]).Scan(&op, &status); err != nil {
		t.Fatal(err)
	}
	if op != "upsert" || status != "CONFIRMED" {
		t.Errorf("change for the edge: %s %s; want upsert CONFIRMED", op, status)
	}
	again := b.do(t, "POST", "/v1/reservations", hold(lot, "FREE1", start, start.Add(time.Hour)), key("free"))
	if again.Status != 201 || string(again.Body) != string(first.Body) {
		t.Errorf("replay: %d %s; want %s", again.Status, again.Body, first.Body)
	}
}

// TestStripeRefuses (finding 3): Stripe's 4xx is a 502
// payment_provider_error with Stripe's message, and no spot is kept: on a
// calm lot (with the Redis guard's word that the key is fresh) the session
// is asked for before the hold, so none is made; on a lot in a rush the
// hold is made first and released. Stripe's 5xx is 503
// unavailable.
func TestStripeRefuses(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusBadRequest)
	var sessions atomic.Int32
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/checkout/sessions" && status.Load() == http.StatusOK {
			n := sessions.Add(1)
			fmt.Fprintf(w, `{"id":"cs_test_%d","object":"checkout.session","url":"http://pay/%d","expires_at":%d}`, n, n, time.Now().Add(time.Hour).Unix())
			return
		}
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"Amount must convert to at least 50 cents."}}`))
	}))
	defer stripe.Close()
	b := setupStripeStub(t, stripe.URL, "refuses")
	s := b.schema
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	statuses := func() (out []string) {
		rows, err := s.DB.Pool.Query(context.Background(), `SELECT status FROM reservations ORDER BY created_at`)
		if err != nil {
			t.Fatal(err)
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	r := b.do(t, "POST", "/v1/reservations", hold(lot, "REF1", start, start.Add(time.Hour)), key("refused"))
	if r.Status != 502 || r.code() != "payment_provider_error" || !strings.Contains(r.json(t)["error"].(map[string]any)["message"].(string), "at least 50 cents") {
		t.Errorf("Stripe 400: %d %s; want 502 payment_provider_error with Stripe's message", r.Status, r.Body)
	}
	if st := statuses(); len(st) != 0 {
		t.Errorf("reservations after Stripe refused on a calm lot: %v; want none made", st)
	}

	// The lot in a rush: its one spot taken, a second driver told 409.
	status.Store(http.StatusOK)
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "REF2", start, start.Add(time.Hour)), key("taken")); r.Status != 201 {
		t.Fatalf("hold with Stripe up: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "REF3", start, start.Add(time.Hour)), key("full")); r.Status != 409 {
		t.Fatalf("hold of a full window: %d %s", r.Status, r.Body)
	}
	status.Store(http.StatusBadRequest)
	later := start.Add(2 * time.Hour)
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "REF4", later, later.Add(time.Hour)), key("hot refused")); r.Status != 502 {
		t.Errorf("Stripe 400 on a lot in a rush: %d %s; want 502", r.Status, r.Body)
	}
	if st := statuses(); len(st) != 2 || st[0] != "PENDING" || st[1] != "CANCELLED" {
		t.Errorf("reservations after Stripe refused on a lot in a rush: %v; want [PENDING CANCELLED] (held first, then released)", st)
	}
	if n := sessions.Load(); n != 2 {
		t.Errorf("%d sessions made; want 2 (the hold, and the one made for the window found full)", n)
	}

	status.Store(http.StatusInternalServerError)
	r = b.do(t, "POST", "/v1/reservations", hold(lot, "REF1", later, later.Add(time.Hour)), key("down"))
	if r.Status != 503 || r.code() != "unavailable" {
		t.Errorf("Stripe 500: %d %s; want 503 unavailable", r.Status, r.Body)
	}
}

// testGuard is a Redis guard of its own namespace (returned, for a test
// that looks at its keys) on the shared Redis, and its client.
func testGuard(t testing.TB, name string) (*guard.Guard, *redis.Client, string) {
	return testGuardWith(t, name, guard.Options{})
}

// testGuardWith is testGuard with opts (its Namespace set here); the
// namespace's keys are dropped when the test ends.
func testGuardWith(t testing.TB, name string, opts guard.Options) (*guard.Guard, *redis.Client, string) {
	t.Helper()
	rdb, err := guard.NewClient("redis://127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Namespace = fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	opts.OpTimeout = patient(opts.OpTimeout)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = rediskeys.Drop(ctx, rdb, opts.Namespace)
		_ = rdb.Close()
	})
	return guard.New(rdb, opts), rdb, opts.Namespace
}

// setupStripeStub wires the service to a Stripe stub at stripeURL (a
// handler the test writes, where the stand-in cannot misbehave as asked),
// with a Redis guard, as parkcloud runs.
func setupStripeStub(t testing.TB, stripeURL, name string) *bundle {
	t.Helper()
	s := pgtest.New(t, 10)
	sp, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: stripeURL, SuccessURL: "http://x/ok", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc := booking.New(s.DB, sp, nil, nil, 10*time.Minute)
	svc.Guard, _, _ = testGuard(t, name)
	srv := httptest.NewServer((&httpapi.Server{Booking: svc, DB: s.DB, AdminToken: adminToken}).Handler())
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, schema: s, svc: svc}
}
