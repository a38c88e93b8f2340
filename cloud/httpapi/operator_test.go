package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/protocol"
)

// open stores an open at the lot's gate for plate, as the relay's ingest
// does with what an edge reports.
func (b *bundle) open(t testing.TB, lot, dir, plate string) {
	t.Helper()
	e := &protocol.GateEvent{V: 1, EventID: uuid.NewString(), Kind: protocol.KindDecision, LotID: lot,
		GateID: dir + "-1", Direction: dir, Plate: plate, Confidence: 0.9, Decision: protocol.DecisionOpen,
		Reason: protocol.ReasonValid, OccurredAt: time.Now().UTC(), DecidedInUs: 120}
	if _, err := b.schema.DB.IngestGateEvent(context.Background(), e, cloud.Transition{}); err != nil {
		t.Fatal(err)
	}
}

// TestLotPage: GET /v1/lots/{id} is public, answers every spelling of the
// id, shows the lot's settings as Go prints durations, and its state from
// the edges' entries and exits: open, full at total_spots inside, closed.
func TestLotPage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.lotWith(t, func(m map[string]any) {
		m["spots"] = 2
		m["free_cancellation"] = "24h"
	})
	get := func(id string) map[string]any {
		t.Helper()
		r := b.do(t, "GET", "/v1/lots/"+id, nil, nil)
		if r.Status != 200 {
			t.Fatalf("GET lot %s: %d %s", id, r.Status, r.Body)
		}
		return r.json(t)
	}
	m := get(strings.ToUpper(lot))
	want := map[string]any{"id": lot, "name": "Central", "latitude": 48.137, "longitude": 11.575,
		"time_zone": "Europe/Berlin", "total_spots": 2.0, "state": "open", "free_cancellation": "24h0m0s",
		"exit_grace": "15m0s", "closed": false}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if r := m["hourly_rate"].(map[string]any); r["amount"] != 250.0 || r["currency"] != "EUR" {
		t.Errorf("hourly_rate %v", r)
	}
	if a := m["denied_alert"].(map[string]any); a["count"] != 5.0 || a["window"] != "2m0s" {
		t.Errorf("denied_alert %v", a)
	}
	occ := m["occupancy"].(map[string]any)
	if occ["inside"] != 0.0 || occ["updated_at"] == nil {
		t.Errorf("occupancy %v", occ)
	}

	b.open(t, lot, protocol.DirectionEntry, "AB123")
	if m := get("{" + lot + "}"); m["state"] != "open" || m["occupancy"].(map[string]any)["inside"] != 1.0 {
		t.Errorf("one inside: %v", m)
	}
	b.open(t, lot, protocol.DirectionEntry, "CD456")
	if m := get(lot); m["state"] != "full" || m["occupancy"].(map[string]any)["inside"] != 2.0 {
		t.Errorf("two inside of two: %v", m)
	}
	b.open(t, lot, protocol.DirectionExit, "AB123")
	if m := get(lot); m["state"] != "open" || m["occupancy"].(map[string]any)["inside"] != 1.0 {
		t.Errorf("one left: %v", m)
	}
	if r := b.do(t, "PATCH", "/v1/lots/"+lot, map[string]any{"closed": true}, admin()); r.Status != 200 || r.json(t)["state"] != "closed" {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	if m := get(lot); m["state"] != "closed" || m["closed"] != true {
		t.Errorf("closed lot: %v", m)
	}
	for _, id := range []string{"not-a-lot", uuid.NewString(), "%00"} {
		if r := b.do(t, "GET", "/v1/lots/"+id, nil, nil); r.Status != 404 || r.code() != "not_found" {
			t.Errorf("GET lot %q: %d %s", id, r.Status, r.Body)
		}
	}
}

// TestPatchLotRules: PATCH takes the fields of a lot's creation by the same
// rules, each alone; anything else is 400 with the field (415 for a body
// that is not JSON, 401 without the admin token), and a refused change
// changes nothing.
func TestPatchLotRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 1)
	cases := []struct {
		name  string
		body  any
		hdr   map[string]string
		code  int
		field string
	}{
		{"NameEmpty", map[string]any{"name": "  "}, nil, 400, "name"},
		{"NameLong", map[string]any{"name": strings.Repeat("x", 201)}, nil, 400, "name"},
		{"NameControl", map[string]any{"name": "a\x1b[2Jb"}, nil, 400, "name"},
		{"NameNumber", map[string]any{"name": 3}, nil, 400, "name"},
		{"RateNegative", map[string]any{"hourly_rate": map[string]any{"amount": -1, "currency": "EUR"}}, nil, 400, "hourly_rate.amount"},
		{"RateHuge", map[string]any{"hourly_rate": map[string]any{"amount": 1_000_001, "currency": "EUR"}}, nil, 400, "hourly_rate.amount"},
		{"RateFraction", map[string]any{"hourly_rate": map[string]any{"amount": 2.5, "currency": "EUR"}}, nil, 400, "hourly_rate.amount"},
		{"RateCurrency", map[string]any{"hourly_rate": map[string]any{"amount": 100, "currency": "EURO"}}, nil, 400, "hourly_rate.currency"},
		{"RateNoCurrency", map[string]any{"hourly_rate": map[string]any{"amount": 100}}, nil, 400, "hourly_rate.currency"},
		{"ClosedString", map[string]any{"closed": "yes"}, nil, 400, "closed"},
		{"FreeCancellationSyntax", map[string]any{"free_cancellation": "1 day"}, nil, 400, "free_cancellation"},
		{"FreeCancellationNegative", map[string]any{"free_cancellation": "-1h"}, nil, 400, "free_cancellation"},
		{"ExitGraceTooLong", map[string]any{"exit_grace": "9000h"}, nil, 400, "exit_grace"},
		{"ExitGraceNumber", map[string]any{"exit_grace": 900}, nil, 400, "exit_grace"},
		{"DeniedCountZero", map[string]any{"denied_alert": map[string]any{"count": 0}}, nil, 400, "denied_alert.count"},
		{"DeniedWindowZero", map[string]any{"denied_alert": map[string]any{"window": "0s"}}, nil, 400, "denied_alert.window"},
		{"DeniedUnknown", map[string]any{"denied_alert": map[string]any{"limit": 3}}, nil, 400, "limit"},
		{"Unknown", map[string]any{"spots": 4}, nil, 400, "spots"},
		{"Trailing", `{"name":"A"} {}`, nil, 400, ""},
		{"NotJSON", "name=A", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, ""},
		{"NoToken", map[string]any{"name": "A"}, map[string]string{"Authorization": ""}, 401, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := admin()
			for k, v := range c.hdr {
				hdr[k] = v
			}
			r := b.do(t, "PATCH", "/v1/lots/"+lot, c.body, hdr)
			if r.Status != c.code || (c.code == 400 && (r.code() != "invalid_request" || r.field() != c.field)) {
				t.Errorf("%d %s, want %d on field %q", r.Status, r.Body, c.code, c.field)
			}
		})
	}
	if m := b.do(t, "GET", "/v1/lots/"+lot, nil, nil).json(t); m["name"] != "Central" ||
		m["hourly_rate"].(map[string]any)["amount"] != 250.0 || m["exit_grace"] != "15m0s" {
		t.Errorf("refused changes changed the lot: %v", m)
	}

	r := b.do(t, "PATCH", "/v1/lots/"+strings.ToUpper(lot), map[string]any{"name": " North ",
		"hourly_rate": map[string]any{"amount": 400, "currency": "usd"}, "free_cancellation": "90m", "exit_grace": "0s",
		"denied_alert": map[string]any{"count": 3, "window": "30s"}}, admin())
	m := r.json(t)
	if r.Status != 200 || m["name"] != "North" || m["free_cancellation"] != "1h30m0s" || m["exit_grace"] != "0s" ||
		m["hourly_rate"].(map[string]any)["currency"] != "USD" || m["hourly_rate"].(map[string]any)["amount"] != 400.0 ||
		m["denied_alert"].(map[string]any)["count"] != 3.0 || m["denied_alert"].(map[string]any)["window"] != "30s" {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	// One field alone leaves the others.
	if m := b.do(t, "PATCH", "/v1/lots/"+lot, map[string]any{"denied_alert": map[string]any{"window": "5m"}}, admin()).json(t); m["denied_alert"].(map[string]any)["count"] != 3.0 ||
		m["denied_alert"].(map[string]any)["window"] != "5m0s" || m["name"] != "North" {
		t.Errorf("partial patch: %v", m)
	}
	if m := b.do(t, "PATCH", "/v1/lots/"+lot, map[string]any{}, admin()); m.Status != 200 || m.json(t)["name"] != "North" {
		t.Errorf("empty patch: %d %s", m.Status, m.Body)
	}
	for _, id := range []string{"nope", uuid.NewString()} {
		if r := b.do(t, "PATCH", "/v1/lots/"+id, map[string]any{"name": "X"}, admin()); r.Status != 404 {
			t.Errorf("PATCH lot %s: %d %s", id, r.Status, r.Body)
		}
	}
}

// TestClosedLot: closing a lot refuses holds 409 lot_closed, on this
// replica and on one that read the lot as open before (its cache is no
// help: the database refuses), with the availability cache in Redis
// warm; the lot shows no free spot; bookings made before stand; reopened,
// it books again.
func TestClosedLot(t *testing.T) {
	t.Parallel()
	b := setupGuarded(t, guard.Options{ClientRate: guard.Limit{Rate: 100_000, Burst: 100_000}})
	// A second replica: its own service and lot cache, the same database
	// and Redis.
	svc2 := booking.New(b.schema.DB, nil, b.guard, nil, 10*time.Minute)
	srv2 := httptest.NewServer((&httpapi.Server{Booking: svc2, DB: b.schema.DB, AdminToken: adminToken, Limiter: b.guard, Cache: b.guard}).Handler())
	t.Cleanup(srv2.Close)
	b2 := &bundle{srv: srv2, schema: b.schema, svc: svc2}

	lot := b.createLot(t, 2)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	win := "?starts_at=" + start.Format(time.RFC3339) + "&ends_at=" + start.Add(time.Hour).Format(time.RFC3339)
	before := b.do(t, "POST", "/v1/reservations", hold(lot, "KEEP1", start, start.Add(time.Hour)), key("cl-0"))
	if before.Status != 201 {
		t.Fatalf("hold before: %d %s", before.Status, before.Body)
	}
	kept := before.json(t)["id"].(string)
	// Both replicas know the lot, and the cache the window, as open.
	for _, x := range []*bundle{b, b2} {
		if r := x.do(t, "GET", "/v1/lots/"+lot+"/availability"+win, nil, nil); r.json(t)["available_spots"] != 1.0 {
			t.Fatalf("availability before: %s", r.Body)
		}
	}
	if r := b2.do(t, "POST", "/v1/reservations", hold(lot, "WARM1", start.Add(3*time.Hour), start.Add(4*time.Hour)), key("cl-warm")); r.Status != 201 {
		t.Fatalf("warm hold on replica 2: %d %s", r.Status, r.Body)
	}

	if r := b.do(t, "PATCH", "/v1/lots/"+lot, map[string]any{"closed": true}, admin()); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	for i, x := range []*bundle{b, b2} {
		r := x.do(t, "POST", "/v1/reservations", hold(lot, "LATE1", start, start.Add(time.Hour)), key(fmt.Sprintf("cl-%d", i+1)))
		if r.Status != 409 || r.code() != "lot_closed" {
			t.Errorf("replica %d hold on a closed lot: %d %s", i+1, r.Status, r.Body)
		}
	}
	for i, x := range []*bundle{b, b2} {
		if r := x.do(t, "GET", "/v1/lots/"+lot+"/availability"+win, nil, nil); r.json(t)["available_spots"] != 0.0 {
			t.Errorf("replica %d availability of a closed lot: %s", i+1, r.Body)
		}
	}
	// Now the cache knows the window full. Replica 2, whose copy of the lot
	// is from before the close (younger than its LotTTL), refuses from the
	// cache and cannot name the reason: 409 no_availability. Replica 1
	// changed the lot itself and says why.
	if r := b2.do(t, "POST", "/v1/reservations", hold(lot, "LATE2", start, start.Add(time.Hour)), key("cl-3")); r.Status != 409 {
		t.Errorf("replica 2 hold on a closed lot known full: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "LATE2", start, start.Add(time.Hour)), key("cl-4")); r.Status != 409 || r.code() != "lot_closed" {
		t.Errorf("replica 1 hold on a closed lot known full: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "GET", "/v1/lots?lat=48.137&lng=11.575&"+win[1:], nil, nil); !strings.Contains(string(r.Body), `"available_spots":0`) {
		t.Errorf("search of a closed lot: %s", r.Body)
	}
	// The same key again is refused again (nothing was stored under it).
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "LATE1", start, start.Add(time.Hour)), key("cl-1")); r.Status != 409 || r.code() != "lot_closed" {
		t.Errorf("retry on a closed lot: %d %s", r.Status, r.Body)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+kept, nil, nil).json(t); g["status"] != "PENDING" {
		t.Errorf("a booking made before the close: %v", g)
	}
	if got := b.history(t, kept); got != "silent:PENDING" {
		t.Errorf("the booking made before the close: %s", got)
	}

	if r := b.do(t, "PATCH", "/v1/lots/"+lot, map[string]any{"closed": false}, admin()); r.Status != 200 || r.json(t)["state"] != "open" {
		t.Fatalf("reopen: %d %s", r.Status, r.Body)
	}
	for i, x := range []*bundle{b2, b} {
		r := x.do(t, "POST", "/v1/reservations", hold(lot, "AGAIN"+fmt.Sprint(i), start, start.Add(time.Hour)), key(fmt.Sprintf("cl-%d", i+1)))
		if want := []int{201, 409}[i]; r.Status != want {
			t.Errorf("replica %d hold after reopening: %d %s, want %d", 2-i, r.Status, r.Body, want)
		}
	}
}

// TestRateChange: a new rate prices the next hold on every replica, also
// one that cached the lot with the old rate; bookings made keep theirs.
func TestRateChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	svc2 := booking.New(b.schema.DB, nil, nil, nil, 10*time.Minute)
	srv2 := httptest.NewServer((&httpapi.Server{Booking: svc2, DB: b.schema.DB, AdminToken: adminToken}).Handler())
	t.Cleanup(srv2.Close)
	b2 := &bundle{srv: srv2, schema: b.schema, svc: svc2}
	lot := b.createLot(t, 4)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	old := b2.do(t, "POST", "/v1/reservations", hold(lot, "OLD1", start, start.Add(time.Hour)), key("rc-1")).json(t)
	if old["price"].(map[string]any)["amount"] != 250.0 {
		t.Fatalf("first hold: %v", old)
	}
	if r := b.do(t, "PATCH", "/v1/lots/"+lot, map[string]any{"hourly_rate": map[string]any{"amount": 600, "currency": "EUR"}}, admin()); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	for i, x := range []*bundle{b, b2} {
		r := x.do(t, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("NEW%d", i), start, start.Add(time.Hour)), key(fmt.Sprintf("rc-n%d", i)))
		if r.Status != 201 || r.json(t)["price"].(map[string]any)["amount"] != 600.0 {
			t.Errorf("replica %d hold after the change: %d %s", i+1, r.Status, r.Body)
		}
	}
	if g := b.do(t, "GET", "/v1/reservations/"+old["id"].(string), nil, nil).json(t); g["price"].(map[string]any)["amount"] != 250.0 {
		t.Errorf("the booking made before: %v", g)
	}
}
