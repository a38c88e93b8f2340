package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func extendTo(end time.Time) map[string]any {
	return map[string]any{"ends_at": end.Format(time.RFC3339)}
}

func withKey(hdr map[string]string, k string) map[string]string {
	out := map[string]string{"Idempotency-Key": k}
	for h, v := range hdr {
		out[h] = v
	}
	return out
}

func (b *payBundle) waitEnds(t testing.TB, id string, want time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := time.Parse(time.RFC3339, b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)["ends_at"].(string))
		if got.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reservation %s ends at %v, want %v", id, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExtension: a confirmed booking is extended by its driver: the extra
// hour is held on the same spot and paid through its own Checkout Session;
// paid, the booking's ends_at moves and the edge is told. Replays answer the
// same bytes; a taken spot or a booking that is not confirmed is refused.
func TestExtension(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "EXT1", "e1", start)
	path := "/v1/reservations/" + id + "/extensions"

	if x := b.do(t, "POST", path, extendTo(start.Add(2*time.Hour)), key("x1")); x.Status != 401 {
		t.Errorf("no token: %d %s", x.Status, x.Body)
	}
	if x := b.do(t, "POST", path, extendTo(start.Add(2*time.Hour)), bearerOf(tok)); x.Status != 400 || x.code() != "missing_idempotency_key" {
		t.Errorf("no key: %d %s", x.Status, x.Body)
	}
	if x := b.do(t, "POST", path, extendTo(start.Add(30*time.Minute)), withKey(bearerOf(tok), "x0")); x.Status != 400 || x.field() != "ends_at" {
		t.Errorf("shorter: %d %s", x.Status, x.Body)
	}
	r := b.do(t, "POST", path, extendTo(start.Add(2*time.Hour)), withKey(bearerOf(tok), "x1"))
	if r.Status != 201 {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	pay, _ := m["payment"].(map[string]any)
	if m["reservation_id"] != id || m["status"] != "PENDING" || m["ends_at"] != start.Add(2*time.Hour).Format(time.RFC3339) ||
		m["price"].(map[string]any)["amount"].(float64) != 250 || pay == nil || pay["session_id"] == "" {
		t.Fatalf("extension: %s", r.Body)
	}
	if again := b.do(t, "POST", path, extendTo(start.Add(2*time.Hour)), withKey(admin(), "x1")); again.Status != 201 ||
		!bytes.Equal(again.Body, r.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %s", again.Status, again.Body)
	}
	if x := b.do(t, "POST", path, extendTo(start.Add(3*time.Hour)), withKey(bearerOf(tok), "x1")); x.Status != 422 {
		t.Errorf("key reused: %d %s", x.Status, x.Body)
	}
	// The held hour is taken for everyone else.
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "OTHER", start.Add(time.Hour), start.Add(2*time.Hour)), key("o1")); x.Status != 409 {
		t.Errorf("hold over a held extension: %d %s", x.Status, x.Body)
	}
	if _, err := b.fake.Pay(pay["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	b.waitEnds(t, id, start.Add(2*time.Hour))
	b.waitStatus(t, id, "CONFIRMED")
	if g := b.do(t, "GET", "/v1/reservations/"+m["id"].(string), nil, admin()); g.Status != 404 {
		t.Errorf("an extension's row is no reservation: %d %s", g.Status, g.Body)
	}
	var ids []string
	for _, e := range b.fake.Events() {
		ids = append(ids, e.ID)
	}
	_ = b.fake.Redeliver(ids...)
	_ = b.fake.Flush(context.Background())
	b.waitProcessed(t)
	var n int
	if err := b.schema.DB.Pool.QueryRow(context.Background(), `
		SELECT count(*) FROM outbox WHERE reservation_id = $1 AND op = 'upsert' AND ends_at = $2`,
		id, start.Add(2*time.Hour)).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d upserts with the new end, %v; want 1", n, err)
	}
	if again := b.do(t, "POST", path, extendTo(start.Add(2*time.Hour)), withKey(bearerOf(tok), "x1")); !bytes.Equal(again.Body, r.Body) {
		t.Errorf("replay after the merge: %d %s", again.Status, again.Body)
	}
	if len(b.fake.Refunds()) != 0 {
		t.Errorf("refunds: %+v", b.fake.Refunds())
	}

	// The next hour is someone else's: no extension into it.
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "NEXT", start.Add(2*time.Hour), start.Add(3*time.Hour)), key("n1")); x.Status != 201 {
		t.Fatalf("next hold: %d %s", x.Status, x.Body)
	}
	if x := b.do(t, "POST", path, extendTo(start.Add(3*time.Hour)), withKey(bearerOf(tok), "x2")); x.Status != 409 || x.code() != "no_availability" {
		t.Errorf("into a taken hour: %d %s", x.Status, x.Body)
	}
	// An unpaid hold cannot be extended.
	h := b.do(t, "POST", "/v1/reservations", hold(lot, "UNPAID", start.Add(5*time.Hour), start.Add(6*time.Hour)), key("u1")).json(t)
	if x := b.do(t, "POST", "/v1/reservations/"+h["id"].(string)+"/extensions", extendTo(start.Add(7*time.Hour)),
		withKey(bearerOf(h["access_token"].(string)), "x3")); x.Status != 409 || x.code() != "not_extendable" {
		t.Errorf("unpaid: %d %s", x.Status, x.Body)
	}
	assertNoOverlap(t, b.bundle)
}

// TestExtensionLatePaymentRefunded: an extension paid after its hold ran
// out is refunded once and moves nothing.
func TestExtensionLatePaymentRefunded(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "LATEX", "lx", start)
	r := b.do(t, "POST", "/v1/reservations/"+id+"/extensions", extendTo(start.Add(2*time.Hour)), withKey(bearerOf(tok), "lx1"))
	if r.Status != 201 {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	b.expireHold(t, m["id"].(string))
	if _, err := b.fake.Pay(m["payment"].(map[string]any)["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range b.fake.Events() {
		ids = append(ids, e.ID)
	}
	_ = b.fake.Redeliver(ids...)
	_ = b.fake.Flush(context.Background())
	b.waitProcessed(t)
	deadline := time.Now().Add(10 * time.Second)
	for len(b.fake.Refunds()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	b.waitProcessed(t)
	if refunds := b.fake.Refunds(); len(refunds) != 1 || refunds[0].Amount != 250 {
		t.Errorf("refunds: %+v", refunds)
	}
	b.waitEnds(t, id, start.Add(time.Hour))
}

// TestExtensionRacesHold: an extension and new holds for the same hour of
// the one spot, all at once: exactly one wins, and no two bookings overlap.
func TestExtensionRacesHold(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	for round := range 4 {
		lot := b.createLot(t, 1)
		start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
		id, tok := b.paidBooking(t, lot, "RACE", fmt.Sprintf("race-%d", round), start)
		var wg sync.WaitGroup
		statuses := make([]int, 5)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i == 0 {
					statuses[i] = b.do(t, "POST", "/v1/reservations/"+id+"/extensions", extendTo(start.Add(2*time.Hour)),
						withKey(bearerOf(tok), fmt.Sprintf("rx-%d", round))).Status
					return
				}
				statuses[i] = b.doRetry(t, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("NEW%d", i), start.Add(time.Hour), start.Add(2*time.Hour)),
					key(fmt.Sprintf("rh-%d-%d", round, i))).Status
			}()
		}
		wg.Wait()
		won := 0
		for _, s := range statuses {
			switch s {
			case 201:
				won++
			case 409:
			default:
				t.Errorf("round %d: status %d in %v", round, s, statuses)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d winners (%v), want 1", round, won, statuses)
		}
	}
	assertNoOverlap(t, b.bundle)
}

// TestCancelExtended: a booking cancelled in policy after an extension was
// paid gives back both payments, each once, under concurrent cancels.
func TestCancelExtended(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(3 * time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "CEXT", "ce1", start)
	r := b.do(t, "POST", "/v1/reservations/"+id+"/extensions", extendTo(start.Add(2*time.Hour)), withKey(bearerOf(tok), "ce2"))
	if r.Status != 201 {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	if _, err := b.fake.Pay(r.json(t)["payment"].(map[string]any)["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	b.waitEnds(t, id, start.Add(2*time.Hour))
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, bearerOf(tok)); c.Status != 200 {
				t.Errorf("cancel: %d %s", c.Status, c.Body)
			}
		}()
	}
	wg.Wait()
	g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)
	if ref := g["refund"].(map[string]any); ref["amount"].(float64) != 500 || ref["status"] != "succeeded" {
		t.Errorf("refund: %v", ref)
	}
	if refunds := b.fake.Refunds(); len(refunds) != 2 || refunds[0].Amount+refunds[1].Amount != 500 {
		t.Errorf("refunds at Stripe: %+v", refunds)
	}
}

// TestCancelWithUnpaidExtension: cancelling a booking frees the interval
// its unpaid extension held, at once.
func TestCancelWithUnpaidExtension(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(3 * time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "CUX", "cu1", start)
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/extensions", extendTo(start.Add(2*time.Hour)), withKey(bearerOf(tok), "cu2")); r.Status != 201 {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	if c := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, bearerOf(tok)); c.Status != 200 {
		t.Fatalf("cancel: %d %s", c.Status, c.Body)
	}
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "NEXT", start.Add(time.Hour), start.Add(2*time.Hour)), key("cu3")); x.Status != 201 {
		t.Errorf("the extension's hour after the cancel: %d %s", x.Status, x.Body)
	}
}
