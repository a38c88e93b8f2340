package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
)

// proxiedDB opens a store on s through a TCP proxy, which the test may cut
// and restore as a Postgres restart looks from the service.
func proxiedDB(t testing.TB, s *pgtest.Schema, maxConns int32) (*postgres.DB, *tcpproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.Listen("127.0.0.1:0", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	db, err := postgres.Open(context.Background(), u.String(), maxConns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db, proxy
}

// TestPostgresOutage: the service reaches Postgres through a TCP proxy that
// the test cuts while drivers are booking, as a Postgres restart looks from
// the service (connections dropped mid-transaction, new ones refused), then
// restores. The shared server itself cannot be restarted under the other
// tests. During the outage /readyz says so and holds fail with 503
// unavailable; drivers retry with their key; afterwards every driver has an
// answer, exactly as many holds as fit were made, one reservation per key,
// no overlap.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 20)
	db, proxy := proxiedDB(t, s, 20)
	ctx := context.Background()

	svc := booking.New(db, nil, nil, nil, 10*time.Minute)
	srv := httptest.NewServer((&httpapi.Server{Booking: svc, DB: db, AdminToken: adminToken}).Handler())
	t.Cleanup(srv.Close)
	bd := &bundle{srv: srv, schema: s, svc: svc}
	lot := bd.createLot(t, 10)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()

	const drivers = 40
	final := make([]reply, drivers)
	var unavailable, ready503 int
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range drivers {
		wg.Go(func() {
			body := hold(lot, fmt.Sprintf("PG%03d", i), start, start.Add(time.Hour))
			// Arrivals spread over the outage: before, during, after.
			time.Sleep(time.Duration(i) * 50 * time.Millisecond)
			for attempt := 0; ; attempt++ {
				r := bd.do(t, "POST", "/v1/reservations", body, key(fmt.Sprint("pg-", i)))
				if (r.Status < 500 && r.Status != 429) || attempt == 200 {
					final[i] = r
					return
				}
				switch {
				case r.Status == 429: // the lot's gate: a crowd came back at once
				case r.Status == 503 && r.code() == "unavailable" && r.Header.Get("Retry-After") != "":
					mu.Lock()
					unavailable++
					mu.Unlock()
				default:
					t.Errorf("driver %d: %d %s during the outage; want 503 unavailable", i, r.Status, r.Body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if r := bd.do(t, "GET", "/readyz", nil, nil); r.Status == 503 {
				mu.Lock()
				ready503++
				mu.Unlock()
			}
		}
	})
	time.Sleep(400 * time.Millisecond)
	proxy.Cut()
	time.Sleep(1500 * time.Millisecond)
	proxy.Restore()
	time.Sleep(time.Duration(drivers) * 50 * time.Millisecond)
	close(stop)
	wg.Wait()

	codes := map[int]int{}
	for _, r := range final {
		codes[r.Status]++
	}
	if codes[201] != 10 || codes[409] != drivers-10 {
		t.Fatalf("final statuses %v; want 10×201 and %d×409", codes, drivers-10)
	}
	if unavailable == 0 || ready503 == 0 {
		t.Errorf("the outage went unseen: %d holds answered 503, /readyz 503 %d times", unavailable, ready503)
	}
	var held, keys int
	if err := s.DB.Pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM reservations WHERE status = 'PENDING'),
		       (SELECT count(DISTINCT reservation_id) FROM idempotency_keys WHERE response_status = 201)`).Scan(&held, &keys); err != nil {
		t.Fatal(err)
	}
	if held != 10 || keys != 10 {
		t.Fatalf("%d holds and %d keys answered 201; want 10 each (one reservation per key)", held, keys)
	}
	assertNoOverlap(t, bd)
	t.Logf("%d answers 503 while cut, /readyz 503 %d times", unavailable, ready503)
}

// TestPaymentDuringPostgresOutage: a driver pays while the database is away.
// The webhook answers 503, so Stripe (the stand-in, which retries as Stripe
// does) keeps the event; once Postgres is back, the event is recorded and
// the booking confirmed: no paid booking is lost.
func TestPaymentDuringPostgresOutage(t *testing.T) {
	t.Parallel()
	b := setupPaymentsWith(t, 10*time.Minute, nil, true)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "PGPAY1", start, start.Add(time.Hour)), key("pgpay"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	id, sess := m["id"].(string), m["payment"].(map[string]any)["session_id"].(string)

	b.proxy.Cut()
	if _, err := b.fake.Pay(sess); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	evs := b.fake.Events()
	if len(evs) != 1 || evs[0].Attempts < 2 || evs[0].LastStatus != 503 {
		t.Fatalf("webhook while the database is away: %+v; want retried, last answer 503", evs)
	}
	var status string
	if err := b.schema.DB.Pool.QueryRow(context.Background(), `SELECT status FROM reservations WHERE id = $1`, id).Scan(&status); err != nil || status != "PENDING" {
		t.Fatalf("status during the outage: %q, %v", status, err)
	}
	b.proxy.Restore()
	b.waitStatus(t, id, "CONFIRMED")
}

// TestOutageAnswers (finding 16): while the database is away, /readyz
// names it down without the error's text, and only the hold's 503 tells
// the client to retry with the same Idempotency-Key.
func TestOutageAnswers(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 5)
	db, proxy := proxiedDB(t, s, 5)
	svc := booking.New(db, nil, nil, nil, 10*time.Minute)
	srv := httptest.NewServer((&httpapi.Server{Booking: svc, DB: db, AdminToken: adminToken}).Handler())
	t.Cleanup(srv.Close)
	bd := &bundle{srv: srv, schema: s, svc: svc}
	lot := bd.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	bd.do(t, "GET", "/v1/lots/"+lot+"/availability", nil, nil) // the lot is known: the hold reaches the database
	proxy.Cut()
	defer proxy.Restore()

	r := bd.do(t, "GET", "/readyz", nil, nil)
	if checks, _ := r.json(t)["checks"].(map[string]any); r.Status != 503 || checks["database"] != "down" {
		t.Errorf("/readyz: %d %s; want 503 with database down, no error text", r.Status, r.Body)
	}
	r = bd.do(t, "GET", "/v1/reservations/"+lot, nil, nil)
	if r.Status != 503 || strings.Contains(string(r.Body), "Idempotency-Key") {
		t.Errorf("GET while away: %d %s; want 503 without a word of Idempotency-Key", r.Status, r.Body)
	}
	r = bd.do(t, "POST", "/v1/reservations", hold(lot, "OUT1", start, start.Add(time.Hour)), key("out"))
	if r.Status != 503 || !strings.Contains(string(r.Body), "Idempotency-Key") {
		t.Errorf("hold while away: %d %s; want 503 saying retry with the same Idempotency-Key", r.Status, r.Body)
	}
}
