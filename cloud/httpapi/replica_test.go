package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestLaggingReplica: with searches read from a replica that has not seen
// the primary's latest holds, search may report spots that are gone (it is
// a hint), but availability (primary, through the Redis cache the holds
// invalidate) and holds (primary) never offer or give a spot the primary
// has taken.
//
// The "replica" is a second schema holding a copy of the primary's lots and
// spots taken before the holds: a standby frozen at that moment, as one is
// while its replay lags. It is opened read-only, as parkcloud opens
// DATABASE_READ_URL.
func TestLaggingReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := pgtest.New(t, 8)
	frozen := pgtest.New(t, 2)
	replica, err := postgres.OpenReplica(ctx, frozen.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Close)

	rdb, err := guard.NewClient("redis://127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	var ns [4]byte
	_, _ = rand.Read(ns[:])
	g := guard.New(rdb, guard.Options{Namespace: "replica-" + hex.EncodeToString(ns[:]), OpTimeout: patient(0)})
	svc := booking.New(primary.DB, nil, g, nil, 10*time.Minute)
	api := &httpapi.Server{Booking: svc, DB: primary.DB, Reads: replica, AdminToken: adminToken, Cache: g}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	b := &bundle{srv: srv, schema: primary, svc: svc}

	lot := b.createLot(t, []string{"A1", "A2"})
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	end := start.Add(time.Hour)
	win := "starts_at=" + start.Format(time.RFC3339) + "&ends_at=" + end.Format(time.RFC3339)
	search := func() []any {
		t.Helper()
		r := b.do(t, "GET", "/v1/lots?lat=48.137&lng=11.575&"+win, nil, nil)
		if r.Status != 200 {
			t.Fatalf("search: %d %s", r.Status, r.Body)
		}
		return r.json(t)["lots"].([]any)
	}
	available := func() float64 {
		t.Helper()
		r := b.do(t, "GET", "/v1/lots/"+lot+"/availability?"+win, nil, nil)
		if r.Status != 200 {
			t.Fatalf("availability: %d %s", r.Status, r.Body)
		}
		return r.json(t)["available_spots"].(float64)
	}

	// The replica has not replayed the lot's creation yet: search does not
	// know it, while the primary does.
	if lots := search(); len(lots) != 0 {
		t.Fatalf("search before the replica has the lot: %v", lots)
	}
	if n := available(); n != 2 { // also fills the cache with 2
		t.Fatalf("availability before the holds: %v, want 2", n)
	}

	// The replica catches up to this moment, then stops replaying.
	for _, table := range []string{"lots", "spots"} {
		if _, err := primary.DB.Pool.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s SELECT * FROM %s.%s",
			pgx.Identifier{frozen.Name}.Sanitize(), table, pgx.Identifier{primary.Name}.Sanitize(), table)); err != nil {
			t.Fatalf("copy %s to the replica: %v", table, err)
		}
	}
	if lots := search(); len(lots) != 1 || lots[0].(map[string]any)["available_spots"].(float64) != 2 {
		t.Fatalf("search once the replica has the lot: %v", lots)
	}

	// Both spots are held on the primary.
	for i, plate := range []string{"AB1", "AB2"} {
		if r := b.do(t, "POST", "/v1/reservations", hold(lot, plate, start, end), key(fmt.Sprint("lag-", i))); r.Status != 201 {
			t.Fatalf("hold %s: %d %s", plate, r.Status, r.Body)
		}
	}

	// Search, from the lagging replica, still says 2: a stale hint.
	if lots := search(); len(lots) != 1 || lots[0].(map[string]any)["available_spots"].(float64) != 2 {
		t.Fatalf("search from the lagging replica: %v, want the stale count 2", lots)
	}
	// Availability (the cached 2 was invalidated by the holds) says 0, and
	// a driver who believed the search is refused, for any spot and for a
	// named one.
	if n := available(); n != 0 {
		t.Fatalf("availability after the holds: %v, want 0", n)
	}
	for i, body := range []map[string]any{hold(lot, "CD1", start, end), withSpot(hold(lot, "CD2", start, end), "A2")} {
		if r := b.do(t, "POST", "/v1/reservations", body, key(fmt.Sprint("late-", i))); r.Status != 409 || r.code() != "no_availability" {
			t.Fatalf("hold after search showed a taken spot free: %d %s, want 409 no_availability", r.Status, r.Body)
		}
	}
	var taken int
	if err := primary.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE lot_id = $1`, lot).Scan(&taken); err != nil || taken != 2 {
		t.Fatalf("reservations on the primary: %d (%v), want 2", taken, err)
	}

	// The replica refuses writes: it is opened read-only.
	if _, err := replica.Pool.Exec(ctx, `DELETE FROM spots`); err == nil {
		t.Errorf("a write through the replica store succeeded")
	}
}

// TestReplicaDownSearchesThePrimary: a replica that cannot be reached costs
// the primary the searches instead of failing them.
func TestReplicaDownSearchesThePrimary(t *testing.T) {
	t.Parallel()
	primary := pgtest.New(t, 4)
	// Nothing listens on port 1; the pool connects lazily, so this opens.
	replica, err := postgres.OpenReplica(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Close)
	svc := booking.New(primary.DB, nil, nil, nil, 10*time.Minute)
	srv := httptest.NewServer((&httpapi.Server{Booking: svc, DB: primary.DB, Reads: replica, AdminToken: adminToken}).Handler())
	t.Cleanup(srv.Close)
	b := &bundle{srv: srv, schema: primary, svc: svc}
	b.createLot(t, 3)
	r := b.do(t, "GET", "/v1/lots?lat=48.137&lng=11.575", nil, nil)
	if r.Status != 200 {
		t.Fatalf("search with the replica down: %d %s", r.Status, r.Body)
	}
	if lots := r.json(t)["lots"].([]any); len(lots) != 1 || lots[0].(map[string]any)["available_spots"].(float64) != 3 {
		t.Fatalf("search with the replica down: %s", r.Body)
	}
}

func withSpot(body map[string]any, spot string) map[string]any {
	body["spot_id"] = spot
	return body
}
