package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

const adminToken = "test-admin"

type bundle struct {
	srv    *httptest.Server
	schema *pgtest.Schema
	svc    *booking.Service
	guard  *guard.Guard // setupGuarded's
	ns     string       // setupGuarded's Redis key namespace
}

func setup(t testing.TB) *bundle {
	t.Helper()
	s := pgtest.New(t, 20)
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	api := &httpapi.Server{Booking: svc, DB: s.DB, AdminToken: adminToken}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, schema: s, svc: svc}
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return m
}

func (r reply) code() string {
	var e struct {
		Error struct{ Code, Field string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r reply) field() string {
	var e struct {
		Error struct{ Code, Field string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Field
}

func (b *bundle) do(t testing.TB, method, path string, body any, hdr map[string]string) reply {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, _ := json.Marshal(v)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.srv.URL+path, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// doRetry is do by a client that comes back after a 429 (sooner than
// Retry-After says, to keep tests short), with the same key.
func (b *bundle) doRetry(t testing.TB, method, path string, body any, hdr map[string]string) reply {
	t.Helper()
	for i := 0; ; i++ {
		r := b.do(t, method, path, body, hdr)
		if r.Status != http.StatusTooManyRequests || i == 100 {
			return r
		}
		time.Sleep(time.Duration(20+i%50) * time.Millisecond)
	}
}

func (b *bundle) createLot(t testing.TB, spots any) string {
	t.Helper()
	r := b.do(t, "POST", "/v1/lots", map[string]any{
		"name": "Central", "latitude": 48.137, "longitude": 11.575, "time_zone": "Europe/Berlin",
		"spots": spots, "hourly_rate": map[string]any{"amount": 250, "currency": "EUR"},
	}, map[string]string{"Authorization": "Bearer " + adminToken})
	if r.Status != 201 {
		t.Fatalf("create lot: %d %s", r.Status, r.Body)
	}
	return r.json(t)["id"].(string)
}

func hold(lot, plate string, start, end time.Time) map[string]any {
	return map[string]any{"lot_id": lot, "plate": plate,
		"starts_at": start.Format(time.RFC3339), "ends_at": end.Format(time.RFC3339)}
}

func key(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

// TestReplayIsTheHoldAsMade: a replay answers the hold as it was made,
// byte for byte, after the reservation has moved on, and when the request
// carried more precision than Postgres keeps.
func TestReplayIsTheHoldAsMade(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, []string{"A1"})
	start := time.Now().Add(time.Hour).Truncate(time.Minute).Add(123456789 * time.Nanosecond).UTC()
	body := map[string]any{"lot_id": lot, "plate": "AB123",
		"starts_at": start.Format(time.RFC3339Nano), "ends_at": start.Add(time.Hour).Format(time.RFC3339Nano)}
	first := b.do(t, "POST", "/v1/reservations", body, key("made"))
	if first.Status != 201 {
		t.Fatalf("hold: %d %s", first.Status, first.Body)
	}
	id := first.json(t)["id"].(string)
	if _, err := b.schema.DB.Pool.Exec(context.Background(),
		`SELECT * FROM parkgate_change($1, '{PENDING}', 'CANCELLED')`, id); err != nil {
		t.Fatal(err)
	}
	again := b.do(t, "POST", "/v1/reservations", body, key("made"))
	if again.Status != 201 || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay after cancel: %d %s\nfirst: %s", again.Status, again.Body, first.Body)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil); g.json(t)["status"] != "CANCELLED" {
		t.Fatalf("GET: %s", g.Body)
	}
}

func TestReservationLife(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, []string{"A1", "A2"})
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	end := start.Add(90 * time.Minute)

	r := b.do(t, "POST", "/v1/reservations", hold(lot, "ab-123 c", start, end), key("k1"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	if m["status"] != "PENDING" || m["plate"] != "AB123C" || m["spot_id"] != "A1" || m["lot_id"] != lot {
		t.Errorf("hold body: %s", r.Body)
	}
	if p := m["price"].(map[string]any); p["amount"].(float64) != 375 || p["currency"] != "EUR" {
		t.Errorf("price: %v", p)
	}
	if _, ok := m["payment"]; ok {
		t.Errorf("payment fields without a payment provider: %s", r.Body)
	}
	exp, _ := time.Parse(time.RFC3339, m["hold_expires_at"].(string))
	if d := time.Until(exp); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("hold_expires_at %v is not 10 minutes ahead", exp)
	}

	// Replay: same key, same meaning (other spelling) → the stored bytes.
	again := b.do(t, "POST", "/v1/reservations", hold(lot, "AB123C", start, end), key("k1"))
	if again.Status != 201 || !bytes.Equal(again.Body, r.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
	}
	// Same key, other body → 422.
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "ZZ999", start, end), key("k1")); x.Status != 422 || x.code() != "idempotency_key_reused" {
		t.Errorf("reuse: %d %s", x.Status, x.Body)
	}
	g := b.do(t, "GET", "/v1/reservations/"+m["id"].(string), nil, nil)
	if g.Status != 200 || g.json(t)["status"] != "PENDING" {
		t.Errorf("get: %d %s", g.Status, g.Body)
	}
	if x := b.do(t, "GET", "/v1/reservations/6f1c3e44-0000-4000-8000-000000000000", nil, nil); x.Status != 404 || x.code() != "not_found" {
		t.Errorf("unknown id: %d %s", x.Status, x.Body)
	}

	// Second spot, then the lot is full for that window; back-to-back fits.
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "B2", start, end), key("k2")); x.Status != 201 || x.json(t)["spot_id"] != "A2" {
		t.Fatalf("second: %d %s", x.Status, x.Body)
	}
	full := b.do(t, "POST", "/v1/reservations", hold(lot, "C3", start.Add(30*time.Minute), end), key("k3"))
	if full.Status != 409 || full.code() != "no_availability" {
		t.Fatalf("full: %d %s", full.Status, full.Body)
	}
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "C3", start.Add(30*time.Minute), end), key("k3")); x.Status != 409 || !bytes.Equal(x.Body, full.Body) || x.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("409 replay: %d %s", x.Status, x.Body)
	}
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "D4", end, end.Add(time.Hour)), key("k4")); x.Status != 201 {
		t.Errorf("back to back: %d %s", x.Status, x.Body)
	}

	av := b.do(t, "GET", fmt.Sprintf("/v1/lots/%s/availability?starts_at=%s&ends_at=%s", lot,
		start.Format(time.RFC3339), end.Format(time.RFC3339)), nil, nil)
	if av.Status != 200 || av.json(t)["available_spots"].(float64) != 0 || av.json(t)["total_spots"].(float64) != 2 {
		t.Errorf("availability: %d %s", av.Status, av.Body)
	}
	se := b.do(t, "GET", fmt.Sprintf("/v1/lots?lat=48.14&lng=11.58&radius_m=5000&starts_at=%s&ends_at=%s",
		end.Format(time.RFC3339), end.Add(time.Hour).Format(time.RFC3339)), nil, nil)
	lots := se.json(t)["lots"].([]any)
	if se.Status != 200 || len(lots) != 1 || lots[0].(map[string]any)["available_spots"].(float64) != 1 {
		t.Errorf("search: %d %s", se.Status, se.Body)
	}
	if far := b.do(t, "GET", "/v1/lots?lat=52.52&lng=13.40&radius_m=5000", nil, nil); len(far.json(t)["lots"].([]any)) != 0 {
		t.Errorf("search far away found: %s", far.Body)
	}
}

// TestExpiredHoldDoesNotBlock: a hold past its time frees its spot for a new
// booking at once, before any worker ran, and the worker then marks the rest.
func TestExpiredHoldDoesNotBlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "OLD1", start, start.Add(time.Hour)), key("a"))
	if r.Status != 201 {
		t.Fatal(r.Status, string(r.Body))
	}
	old := r.json(t)["id"].(string)
	ctx := context.Background()
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	n := b.do(t, "POST", "/v1/reservations", hold(lot, "NEW1", start, start.Add(time.Hour)), key("b"))
	if n.Status != 201 {
		t.Fatalf("new hold blocked by an expired one: %d %s", n.Status, n.Body)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+old, nil, nil); g.json(t)["status"] != "EXPIRED" {
		t.Errorf("old hold: %s", g.Body)
	}
	// The worker ends overdue holds; running it twice at once is harmless.
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 second' WHERE status = 'PENDING'`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := b.svc.ExpireDueHolds(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if counts[0]+counts[1] != 1 {
		t.Errorf("expired %v, want 1 in all", counts)
	}
	assertLogGapFree(t, b, lot)
}

// assertLogGapFree checks the lot's change log runs 1..seq without a hole.
func assertLogGapFree(t testing.TB, b *bundle, lot string) {
	t.Helper()
	var n, maxSeq, lotSeq int64
	err := b.schema.DB.Pool.QueryRow(context.Background(), `
		SELECT count(*), coalesce(max(o.seq), 0), (SELECT seq FROM lots WHERE id = $1)
		  FROM outbox o WHERE o.lot_id = $1`, lot).Scan(&n, &maxSeq, &lotSeq)
	if err != nil {
		t.Fatal(err)
	}
	if n != maxSeq || maxSeq != lotSeq {
		t.Errorf("change log of lot: %d rows, max seq %d, lot seq %d", n, maxSeq, lotSeq)
	}
}

func assertNoOverlap(t testing.TB, b *bundle) {
	t.Helper()
	var n int
	err := b.schema.DB.Pool.QueryRow(context.Background(), `
		SELECT count(*) FROM reservations a JOIN reservations b
		  ON a.spot_id = b.spot_id AND a.id < b.id
		 AND a.starts_at < b.ends_at AND a.ends_at > b.starts_at
		 WHERE a.status IN ('PENDING','CONFIRMED','CHECKED_IN')
		   AND b.status IN ('PENDING','CONFIRMED','CHECKED_IN')`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d overlapping active pairs", n)
	}
}

// TestConcurrentHolds: 200 drivers at once on a lot of 10 spots, windows
// overlapping in a pattern where exactly 10 spots × 2 back-to-back windows
// fit. Exactly 20 holds, no overlap; then the same with retries sharing keys.
func TestConcurrentHolds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 10)
	base := time.Now().Add(2 * time.Hour).Truncate(time.Hour).UTC()
	// Windows: [0,60) [60,120) and [30,90): every [30,90) overlaps both others.
	windows := [][2]time.Duration{{0, 60}, {60, 120}, {30, 90}}
	const drivers = 200
	var wg sync.WaitGroup
	statuses := make([]int, drivers)
	for i := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := windows[i%3]
			s := base.Add(w[0] * time.Minute)
			e := base.Add(w[1] * time.Minute)
			// Each key is sent by two "retrying" clients at once.
			k := fmt.Sprintf("drv-%d", i/2)
			body := hold(lot, fmt.Sprintf("P%05d", i/2), s, e)
			if i%2 == 1 {
				w = windows[(i-1)%3]
				body = hold(lot, fmt.Sprintf("P%05d", i/2), base.Add(w[0]*time.Minute), base.Add(w[1]*time.Minute))
			}
			r := b.doRetry(t, "POST", "/v1/reservations", body, key(k))
			statuses[i] = r.Status
			if r.Status >= 500 {
				t.Errorf("driver %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	assertNoOverlap(t, b)
	var active, keysWithTwo int
	ctx := context.Background()
	if err := b.schema.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE status = 'PENDING'`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	// 10 spots: each spot holds either one [30,90) or up to [0,60)+[60,120).
	// Drivers are spread so that every spot can be filled with 2 of the
	// back-to-back pair; the greedy outcome depends on arrival order, so
	// the invariant is: active holds ≤ 20, ≥ 10, and no overlap.
	if active < 10 || active > 20 {
		t.Errorf("active holds %d, want 10..20", active)
	}
	if err := b.schema.DB.Pool.QueryRow(ctx, `
		SELECT count(*) FROM (SELECT plate FROM reservations GROUP BY plate HAVING count(*) > 1) x`).Scan(&keysWithTwo); err != nil {
		t.Fatal(err)
	}
	if keysWithTwo != 0 {
		t.Errorf("%d keys booked twice", keysWithTwo)
	}
	created := 0
	for _, s := range statuses {
		if s == 201 {
			created++
		}
	}
	if created < active {
		t.Errorf("%d answered 201 but %d holds exist", created, active)
	}
	assertLogGapFree(t, b, lot)
}

// TestConcurrentSameWindow: 200 goroutines, one window, 10 spots → exactly 10.
func TestConcurrentSameWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 10)
	start := time.Now().Add(3 * time.Hour).Truncate(time.Minute).UTC()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := time.Duration(i%7) * time.Minute // all overlap each other
			r := b.doRetry(t, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("S%04d", i), start.Add(off), start.Add(time.Hour)), key(fmt.Sprint("same-", i)))
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[201] != 10 || codes[409] != 190 {
		t.Errorf("statuses %v, want 10×201 and 190×409", codes)
	}
	assertNoOverlap(t, b)
	assertLogGapFree(t, b, lot)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 3)
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	end := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	good := fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q}`, lot, start, end)
	tests := []struct {
		name   string
		body   string
		key    string
		status int
		code   string
		field  string
	}{
		{"MissingKey", good, "", 400, "missing_idempotency_key", ""},
		{"Malformed", `{"lot_id":`, "k", 400, "invalid_request", ""},
		{"NotObject", `[1,2]`, "k", 400, "invalid_request", ""},
		{"Empty", ``, "k", 400, "invalid_request", ""},
		{"Trailing", good + `{}`, "k", 400, "invalid_request", ""},
		{"WrongType", fmt.Sprintf(`{"lot_id":%q,"plate":123,"starts_at":%q,"ends_at":%q}`, lot, start, end), "k", 400, "invalid_request", "plate"},
		{"UnknownField", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q,"vip":true}`, lot, start, end), "k", 400, "invalid_request", "vip"},
		{"MissingPlate", fmt.Sprintf(`{"lot_id":%q,"starts_at":%q,"ends_at":%q}`, lot, start, end), "k", 400, "invalid_request", "plate"},
		{"MissingLot", fmt.Sprintf(`{"plate":"AB1","starts_at":%q,"ends_at":%q}`, start, end), "k", 400, "invalid_request", "lot_id"},
		{"BadPlate", fmt.Sprintf(`{"lot_id":%q,"plate":"A_1!","starts_at":%q,"ends_at":%q}`, lot, start, end), "k", 400, "invalid_request", "plate"},
		{"BadTime", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":"tomorrow","ends_at":%q}`, lot, end), "k", 400, "invalid_request", "starts_at"},
		{"Reversed", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q}`, lot, end, start), "k", 400, "invalid_request", "ends_at"},
		{"Empty window", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q}`, lot, start, start), "k", 400, "invalid_request", "ends_at"},
		{"SubMicrosecondWindow", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q}`, lot, strings.Replace(start, "Z", ".0000005Z", 1), strings.Replace(start, "Z", ".0000009Z", 1)), "k", 400, "invalid_request", "ends_at"},
		{"Past", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q}`, lot, past, end), "k", 400, "invalid_request", "starts_at"},
		{"TooLong", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q}`, lot, start, time.Now().Add(40*24*time.Hour).UTC().Format(time.RFC3339)), "k", 400, "invalid_request", "ends_at"},
		{"UnknownLot", fmt.Sprintf(`{"lot_id":"6f1c3e44-0000-4000-8000-000000000000","plate":"AB1","starts_at":%q,"ends_at":%q}`, start, end), "k", 404, "not_found", "lot_id"},
		{"UnknownSpot", fmt.Sprintf(`{"lot_id":%q,"plate":"AB1","starts_at":%q,"ends_at":%q,"spot_id":"Z9"}`, lot, start, end), "k2", 400, "invalid_request", "spot_id"},
		{"Oversize", `{"lot_id":"` + strings.Repeat("x", 100<<10) + `"}`, "k", 413, "invalid_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			if tt.key != "" {
				hdr["Idempotency-Key"] = tt.key
			}
			r := b.do(t, "POST", "/v1/reservations", tt.body, hdr)
			if r.Status != tt.status || r.code() != tt.code || (tt.field != "" && r.field() != tt.field) {
				t.Errorf("got %d %s, want %d %s field %q", r.Status, r.Body, tt.status, tt.code, tt.field)
			}
		})
	}
	var n int
	if err := b.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM reservations) + (SELECT count(*) FROM idempotency_keys) + (SELECT count(*) FROM outbox)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("bad input left %d rows behind", n)
	}
	// The key of a refused request is still free for a good one.
	if r := b.do(t, "POST", "/v1/reservations", good, key("k")); r.Status != 201 {
		t.Errorf("good request after bad ones: %d %s", r.Status, r.Body)
	}
}

func TestLotAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	auth := map[string]string{"Authorization": "Bearer " + adminToken}
	good := map[string]any{"name": "X", "latitude": 1.0, "longitude": 2.0, "time_zone": "UTC",
		"spots": 2, "hourly_rate": map[string]any{"amount": 100, "currency": "usd"}}
	if r := b.do(t, "POST", "/v1/lots", good, nil); r.Status != 401 || r.code() != "unauthorized" {
		t.Errorf("no token: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "POST", "/v1/lots", good, map[string]string{"Authorization": "Bearer nope"}); r.Status != 401 {
		t.Errorf("bad token: %d %s", r.Status, r.Body)
	}
	for field, v := range map[string]any{"latitude": 91.0, "longitude": "east", "spots": 0, "time_zone": "Mars/Base", "name": ""} {
		bad := map[string]any{}
		for k, x := range good {
			bad[k] = x
		}
		bad[field] = v
		if r := b.do(t, "POST", "/v1/lots", bad, auth); r.Status != 400 || r.field() != field {
			t.Errorf("bad %s: %d %s", field, r.Status, r.Body)
		}
	}
	r := b.do(t, "POST", "/v1/lots", good, auth)
	if r.Status != 201 || r.json(t)["total_spots"].(float64) != 2 {
		t.Errorf("create: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "GET", "/v1/lots?lat=1&lng=2&radius_m=-4", nil, nil); r.Status != 400 || r.field() != "radius_m" {
		t.Errorf("bad radius: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "GET", "/v1/lots?lng=2", nil, nil); r.Status != 400 || r.field() != "lat" {
		t.Errorf("missing lat: %d %s", r.Status, r.Body)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := b.do(t, "GET", p, nil, nil); r.Status != 200 {
			t.Errorf("%s: %d %s", p, r.Status, r.Body)
		}
	}
	b.do(t, "GET", "/v1/reservations/x", nil, nil)
	if r := b.do(t, "GET", "/metrics", nil, nil); r.Status != 200 || !bytes.Contains(r.Body, []byte(`parkgate_http_request_duration_seconds_bucket{method="GET",route="/v1/reservations/{id}",status="404"`)) {
		t.Errorf("metrics: %d", r.Status)
	}
}

// TestLotIDSpellings: a lot id in another spelling (upper case, braces) is
// the same lot, and the same request under one key.
func TestLotIDSpellings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	first := b.do(t, "POST", "/v1/reservations", hold(strings.ToUpper(lot), "SP1", start, start.Add(time.Hour)), key("spell"))
	if first.Status != 201 || first.json(t)["lot_id"] != lot {
		t.Fatalf("hold by upper-case id: %d %s", first.Status, first.Body)
	}
	again := b.do(t, "POST", "/v1/reservations", hold("{"+lot+"}", "SP1", start, start.Add(time.Hour)), key("spell"))
	if again.Status != 201 || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay by braced id: %d %q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
	}
}
