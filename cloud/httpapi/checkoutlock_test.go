package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCheckoutHoldsNothingShared (issue 17): while one driver's call to
// Stripe hangs, in either order (session first on a calm lot, hold first on
// a lot in a rush), the lot's row is not locked, no transaction of the
// service is open, and another driver's hold on the same lot is made and
// answered.
func TestCheckoutHoldsNothingShared(t *testing.T) {
	t.Parallel()
	var n, blockAt atomic.Int32
	entered, release := make(chan struct{}, 1), make(chan struct{}, 1)
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/checkout/sessions" {
			_, _ = w.Write([]byte(`{}`)) // an expiry of an unused session
			return
		}
		i := n.Add(1)
		if i == blockAt.Load() {
			entered <- struct{}{}
			<-release
		}
		fmt.Fprintf(w, `{"id":"cs_test_%d","object":"checkout.session","url":"http://pay/%d","expires_at":%d}`, i, i, time.Now().Add(time.Hour).Unix())
	}))
	defer stripe.Close()
	b := setupStripeStub(t, stripe.URL, "checkoutlock")
	s := b.schema
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	ctx := context.Background()

	whileHanging := func(t *testing.T, name string, window time.Time, heldFirst bool) {
		t.Helper()
		blockAt.Store(n.Load() + 1)
		done := make(chan reply, 1)
		go func() {
			done <- b.do(t, "POST", "/v1/reservations", hold(lot, "HANG"+name, window, window.Add(time.Hour)), key("hang-"+name))
		}()
		select {
		case <-entered:
		case r := <-done:
			t.Fatalf("%s: answered %d %s before its Stripe call", name, r.Status, r.Body)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no call to Stripe", name)
		}
		// The lot's row: free to lock at once.
		err := pgx.BeginFunc(ctx, s.DB.Pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 FOR UPDATE NOWAIT`, lot)
			return err
		})
		if err != nil {
			t.Errorf("%s: the lot's row while Stripe hangs: %v", name, err)
		}
		// Which order this was: the hold is there already only when it
		// was made first.
		var held int
		if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE plate = $1`, "HANG"+name).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if (held == 1) != heldFirst {
			t.Errorf("%s: %d holds made before the Stripe call answered; want the hold first: %v", name, held, heldFirst)
		}
		// Any transaction open on this schema's lots or reservations (the
		// names resolve in the test's schema): other tests share the
		// database, and one of them holds a transaction over holds of its
		// own schema on purpose (TestHoldReadsItsOwnLotsSpots), which a
		// match on the query text counted here.
		var open int
		if err := s.DB.Pool.QueryRow(ctx, `SELECT count(DISTINCT a.pid) FROM pg_stat_activity a
			  JOIN pg_locks l ON l.pid = a.pid
			 WHERE a.pid <> pg_backend_pid() AND a.state LIKE 'idle in transaction%'
			   AND l.relation IN ('lots'::regclass, 'reservations'::regclass)`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open != 0 {
			t.Errorf("%s: %d transactions of a hold open while Stripe hangs", name, open)
		}
		other := window.Add(3 * time.Hour)
		answered := make(chan reply, 1)
		go func() {
			answered <- b.do(t, "POST", "/v1/reservations", hold(lot, "OTHR"+name, other, other.Add(time.Hour)), key("other-"+name))
		}()
		select {
		case r := <-answered:
			if r.Status != 201 {
				t.Errorf("%s: another driver's hold while Stripe hangs: %d %s", name, r.Status, r.Body)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: another driver's hold waited for the hanging Stripe call", name)
			defer func() { <-answered }()
		}
		release <- struct{}{}
		if r := <-done; r.Status != 201 {
			t.Errorf("%s: the hanging hold: %d %s", name, r.Status, r.Body)
		}
	}

	t.Run("SessionFirst", func(t *testing.T) { whileHanging(t, "CALM", start, false) })

	t.Run("HoldFirst", func(t *testing.T) {
		// A lot in a rush: a window full (its other spot taken now), a
		// third driver told 409 just before.
		full := start.Add(3 * time.Hour)
		if r := b.do(t, "POST", "/v1/reservations", hold(lot, "FULL1", full, full.Add(time.Hour)), key("full-1")); r.Status != 201 {
			t.Fatalf("hold of the window's last spot: %d %s", r.Status, r.Body)
		}
		if r := b.do(t, "POST", "/v1/reservations", hold(lot, "FULL2", full, full.Add(time.Hour)), key("full-2")); r.Status != 409 {
			t.Fatalf("hold of a full window: %d %s", r.Status, r.Body)
		}
		whileHanging(t, "HOT", start.Add(6*time.Hour), true)
	})
}
