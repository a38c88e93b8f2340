package httpapi_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// refundOf reads the refund a reservation shows.
func refundOf(t testing.TB, m map[string]any) (amount float64, status string) {
	t.Helper()
	r, _ := m["refund"].(map[string]any)
	if r == nil {
		return 0, ""
	}
	if r["currency"] != "EUR" {
		t.Errorf("refund currency %v", r["currency"])
	}
	return r["amount"].(float64), r["status"].(string)
}

// stripeRefunded is what the Stripe stand-in refunded of the payments.
func (b *payBundle) stripeRefunded() (total int64, n int) {
	for _, r := range b.fake.Refunds() {
		total += r.Amount
		n++
	}
	return total, n
}

// TestRefund: an operator refunds part, then the rest, of a paid booking;
// the reservation shows all refunded so far, its status untouched; more
// than was paid is 409 refund_exceeds_payment, as is any refund of what
// was never paid; only the admin may.
func TestRefund(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 3)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "REF1", "rf-1", start)
	path := "/v1/reservations/" + id + "/refund"

	for name, c := range map[string]struct {
		body   any
		hdr    map[string]string
		status int
		code   string
	}{
		"Driver":     {map[string]any{"amount": 10}, bearerOf(tok), 401, "unauthorized"},
		"Nobody":     {nil, nil, 401, "unauthorized"},
		"Zero":       {map[string]any{"amount": 0}, admin(), 400, "invalid_request"},
		"Negative":   {map[string]any{"amount": -5}, admin(), 400, "invalid_request"},
		"Fraction":   {map[string]any{"amount": 1.5}, admin(), 400, "invalid_request"},
		"Unknown":    {map[string]any{"amount": 5, "reason": "x"}, admin(), 400, "invalid_request"},
		"TooMuch":    {map[string]any{"amount": 251}, admin(), 409, "refund_exceeds_payment"},
		"NotJSON":    {"amount=5", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		"KeyTooLong": {map[string]any{"amount": 5}, map[string]string{"Authorization": "Bearer " + adminToken, "Idempotency-Key": strings.Repeat("k", 256)}, 400, "invalid_request"},
	} {
		r := b.do(t, "POST", path, c.body, c.hdr)
		if r.Status != c.status || r.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", name, r.Status, r.Body, c.status, c.code)
		}
	}
	if r := b.do(t, "POST", "/v1/reservations/"+strings.Repeat("0", 8)+"-0000-4000-8000-000000000000/refund", nil, admin()); r.Status != 404 {
		t.Errorf("unknown reservation: %d %s", r.Status, r.Body)
	}
	if total, _ := b.stripeRefunded(); total != 0 {
		t.Fatalf("refused refunds refunded %d", total)
	}

	r := b.do(t, "POST", path, map[string]any{"amount": 100}, admin())
	m := r.json(t)
	if a, st := refundOf(t, m); r.Status != 200 || a != 100 || st != "succeeded" || m["status"] != "CONFIRMED" {
		t.Fatalf("partial refund: %d %s", r.Status, r.Body)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t); g["status"] != "CONFIRMED" {
		t.Errorf("after a refund: %v", g)
	}
	r = b.do(t, "POST", path, nil, admin()) // the rest
	if a, st := refundOf(t, r.json(t)); r.Status != 200 || a != 250 || st != "succeeded" {
		t.Fatalf("refund of the rest: %d %s", r.Status, r.Body)
	}
	if total, n := b.stripeRefunded(); total != 250 || n != 2 {
		t.Errorf("Stripe refunded %d in %d refunds, want 250 in 2", total, n)
	}
	if r := b.do(t, "POST", path, map[string]any{"amount": 1}, admin()); r.Status != 409 || r.code() != "refund_exceeds_payment" {
		t.Errorf("refund past what was paid: %d %s", r.Status, r.Body)
	}
	// Fully refunded, a cancellation owes nothing more.
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, admin()); r.Status != 200 {
		t.Errorf("cancel: %d %s", r.Status, r.Body)
	} else if a, _ := refundOf(t, r.json(t)); a != 250 {
		t.Errorf("cancelled after a full refund shows %v refunded", a)
	}
	if total, _ := b.stripeRefunded(); total != 250 {
		t.Errorf("Stripe refunded %d after the cancel", total)
	}

	// Never paid: a pending hold, a free booking.
	pending := b.do(t, "POST", "/v1/reservations", hold(lot, "PEND1", start, start.Add(time.Hour)), key("rf-p")).json(t)["id"].(string)
	free := b.lotWith(t, func(m map[string]any) { m["hourly_rate"] = map[string]any{"amount": 0, "currency": "EUR"} })
	freeID := b.do(t, "POST", "/v1/reservations", hold(free, "FREE1", start, start.Add(time.Hour)), key("rf-f")).json(t)["id"].(string)
	for _, x := range []string{pending, freeID} {
		if r := b.do(t, "POST", "/v1/reservations/"+x+"/refund", nil, admin()); r.Status != 409 || r.code() != "refund_exceeds_payment" {
			t.Errorf("refund of %s, never paid: %d %s", x, r.Status, r.Body)
		}
	}
}

// TestRefundThenCancel: a cancellation after a partial refund refunds the
// rest, and the refund shown adds up to what was paid, at Stripe too.
func TestRefundThenCancel(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	id, _ := b.paidBooking(t, lot, "RTC1", "rtc-1", time.Now().Add(2*time.Hour).Truncate(time.Minute).UTC())
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/refund", map[string]any{"amount": 60}, admin()); r.Status != 200 {
		t.Fatalf("refund: %d %s", r.Status, r.Body)
	}
	r := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, admin())
	if a, st := refundOf(t, r.json(t)); r.Status != 200 || a != 250 || st != "succeeded" {
		t.Fatalf("cancel after a refund of 60: %d %s", r.Status, r.Body)
	}
	if total, _ := b.stripeRefunded(); total != 250 {
		t.Errorf("Stripe refunded %d of 250", total)
	}
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/refund", map[string]any{"amount": 1}, admin()); r.Status != 409 {
		t.Errorf("refund after the cancellation refunded the rest: %d %s", r.Status, r.Body)
	}
}

// TestRefundIdempotent: the same key and amount answer the first response
// byte for byte with Idempotent-Replayed, and refund once, also when the
// requests come at once; another amount under the key is 422.
func TestRefundIdempotent(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	id, _ := b.paidBooking(t, lot, "IDEM1", "ri-1", time.Now().Add(2*time.Hour).Truncate(time.Minute).UTC())
	path := "/v1/reservations/" + id + "/refund"
	hdr := map[string]string{"Authorization": "Bearer " + adminToken, "Idempotency-Key": "op-refund-1"}

	const n = 8
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = b.do(t, "POST", path, map[string]any{"amount": 70}, hdr)
		}()
	}
	wg.Wait()
	var first []byte
	fresh := 0
	for _, r := range replies {
		switch {
		case r.Status == 409 && r.code() == "idempotency_key_in_use":
			continue // the first was still at it: the client retries
		case r.Status != 200:
			t.Fatalf("concurrent refund: %d %s", r.Status, r.Body)
		case r.Header.Get("Idempotent-Replayed") != "true":
			fresh++
		}
		if first == nil {
			first = r.Body
		} else if !bytes.Equal(first, r.Body) {
			t.Errorf("two answers under one key:\n%s\n%s", first, r.Body)
		}
	}
	if fresh != 1 {
		t.Errorf("%d fresh answers under one key, want 1", fresh)
	}
	again := b.do(t, "POST", path, map[string]any{"amount": 70}, hdr)
	if again.Status != 200 || again.Header.Get("Idempotent-Replayed") != "true" || (first != nil && !bytes.Equal(again.Body, first)) {
		t.Errorf("replay: %d %v %s\nfirst: %s", again.Status, again.Header, again.Body, first)
	}
	if a, _ := refundOf(t, again.json(t)); a != 70 {
		t.Errorf("refund shown %v, want 70", a)
	}
	if r := b.do(t, "POST", path, map[string]any{"amount": 71}, hdr); r.Status != 422 || r.code() != "idempotency_key_reused" {
		t.Errorf("another amount under the key: %d %s", r.Status, r.Body)
	}
	if total, k := b.stripeRefunded(); total != 70 || k != 1 {
		t.Errorf("Stripe refunded %d in %d refunds, want 70 in 1", total, k)
	}
}

// TestRefundConcurrent: refunds without a key, all at once, never add up
// to more than was paid, here or at Stripe.
func TestRefundConcurrent(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	id, _ := b.paidBooking(t, lot, "CONC1", "rc-1", time.Now().Add(2*time.Hour).Truncate(time.Minute).UTC())
	const n = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.do(t, "POST", "/v1/reservations/"+id+"/refund", map[string]any{"amount": 40}, admin())
			mu.Lock()
			codes[fmt.Sprint(r.Status, r.code())]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// 250 paid: six refunds of 40 fit, the seventh would pass it.
	if codes["200"] != 6 || codes["409refund_exceeds_payment"] != n-6 {
		t.Errorf("answers: %v", codes)
	}
	if total, k := b.stripeRefunded(); total != 240 || k != 6 {
		t.Errorf("Stripe refunded %d in %d refunds, want 240 in 6", total, k)
	}
	if a, st := refundOf(t, b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)); a != 240 || st != "succeeded" {
		t.Errorf("refund shown: %v %s", a, st)
	}
	// What is left, 10, is all one more may take.
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/refund", nil, admin()); r.Status != 200 {
		t.Errorf("the rest: %d %s", r.Status, r.Body)
	} else if a, _ := refundOf(t, r.json(t)); a != 250 {
		t.Errorf("after the rest: %v", a)
	}
}

// TestRefundSplitsOverPayments: what was paid is the booking's payment,
// its paid extension's and its paid overstay's, each its own payment at
// Stripe; a refund of more than one of them holds is split over them, each
// part refunded from its own payment, and all of it is the limit.
func TestRefundSplitsOverPayments(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "SPLIT1", "sp-1", start)
	x := b.do(t, "POST", "/v1/reservations/"+id+"/extensions", extendTo(start.Add(2*time.Hour)), withKey(bearerOf(tok), "sp-x"))
	if x.Status != 201 {
		t.Fatalf("extend: %d %s", x.Status, x.Body)
	}
	if _, err := b.fake.Pay(x.json(t)["payment"].(map[string]any)["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	b.waitEnds(t, id, start.Add(2*time.Hour))
	// In, and out 40 minutes late: an overstay of 188, paid.
	b.gateEvent(t, lot, id, "entry", start)
	b.gateEvent(t, lot, id, "exit", start.Add(2*time.Hour+40*time.Minute+time.Second))
	if _, err := b.svc.ChargeOverstays(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	o := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)["overstay"].(map[string]any)
	if _, err := b.fake.Pay(o["payment"].(map[string]any)["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)["overstay"].(map[string]any)["status"] != "paid" {
		if time.Now().After(deadline) {
			t.Fatal("overstay never paid")
		}
		time.Sleep(20 * time.Millisecond)
	}
	const paid = 250 + 250 + 188

	r := b.do(t, "POST", "/v1/reservations/"+id+"/refund", map[string]any{"amount": 300}, admin())
	if a, _ := refundOf(t, r.json(t)); r.Status != 200 || a != 300 {
		t.Fatalf("refund of 300: %d %s", r.Status, r.Body)
	}
	byIntent := map[string]int64{}
	for _, f := range b.fake.Refunds() {
		byIntent[f.PaymentIntentID] += f.Amount
	}
	if len(byIntent) != 2 {
		t.Errorf("300 of 250+250+188 taken from %d payments, want 2: %v", len(byIntent), byIntent)
	}
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/refund", map[string]any{"amount": paid - 300 + 1}, admin()); r.Status != 409 {
		t.Errorf("one more than was paid: %d %s", r.Status, r.Body)
	}
	r = b.do(t, "POST", "/v1/reservations/"+id+"/refund", nil, admin())
	if a, _ := refundOf(t, r.json(t)); r.Status != 200 || a != paid {
		t.Fatalf("the rest: %d %s", r.Status, r.Body)
	}
	byIntent = map[string]int64{}
	for _, f := range b.fake.Refunds() {
		byIntent[f.PaymentIntentID] += f.Amount
	}
	got := []int64{}
	for _, v := range byIntent {
		got = append(got, v)
	}
	if total, _ := b.stripeRefunded(); total != paid || len(byIntent) != 3 {
		t.Errorf("Stripe refunded %d from %v, want %d from 3 payments", total, got, paid)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t); g["status"] != "COMPLETED" {
		t.Errorf("status after a full refund: %v", g["status"])
	}
}

// TestRefundProviderDown: with Stripe away a refund is recorded, shown
// pending and counted against what was paid, answered 503; the retry with
// its key, or the refund worker for one without, finishes it once.
func TestRefundProviderDown(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	id, _ := b.paidBooking(t, lot, "DOWN1", "rd-1", time.Now().Add(2*time.Hour).Truncate(time.Minute).UTC())
	path := "/v1/reservations/" + id + "/refund"
	keyed := map[string]string{"Authorization": "Bearer " + adminToken, "Idempotency-Key": "rd-k"}

	deferred, succeeded := operatorRefunds("deferred"), operatorRefunds("succeeded")
	b.fake.SetDown(true)
	if r := b.do(t, "POST", path, map[string]any{"amount": 100}, keyed); r.Status != 503 || r.code() != "unavailable" {
		t.Fatalf("refund with Stripe away: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "POST", path, map[string]any{"amount": 100}, admin()); r.Status != 503 {
		t.Fatalf("keyless refund with Stripe away: %d %s", r.Status, r.Body)
	}
	if a, st := refundOf(t, b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)); a != 200 || st != "pending" {
		t.Errorf("refund shown while Stripe is away: %v %s", a, st)
	}
	// Both pending refunds count: 50 is left, not 250.
	if r := b.do(t, "POST", path, map[string]any{"amount": 51}, admin()); r.Status != 409 {
		t.Errorf("past what is left with two pending: %d %s", r.Status, r.Body)
	}
	b.fake.SetDown(false)

	// The keyed one: its retry, in flight for 30 s since it was made, is
	// told to come back; taken over once the lease is past.
	if r := b.do(t, "POST", path, map[string]any{"amount": 100}, keyed); r.Status != 409 || r.code() != "idempotency_key_in_use" {
		t.Errorf("retry within the lease: %d %s", r.Status, r.Body)
	}
	b.ageRefunds(t)
	r := b.do(t, "POST", path, map[string]any{"amount": 100}, keyed)
	if r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after the lease: %d %v %s", r.Status, r.Header, r.Body)
	}
	if a, st := refundOf(t, r.json(t)); a != 200 || st != "pending" {
		t.Errorf("after the keyed retry: %v %s (the keyless one still pending)", a, st)
	}
	b.ageRefunds(t)
	if n, err := b.svc.RetryOperatorRefunds(t.Context(), 30*time.Second, 10); err != nil || n != 1 {
		t.Fatalf("refund worker: %d, %v", n, err)
	}
	if n, err := b.svc.RetryOperatorRefunds(t.Context(), 0, 10); err != nil || n != 0 {
		t.Errorf("refund worker again: %d, %v", n, err)
	}
	if a, st := refundOf(t, b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)); a != 200 || st != "succeeded" {
		t.Errorf("refund shown after both: %v %s", a, st)
	}
	if total, n := b.stripeRefunded(); total != 200 || n != 2 {
		t.Errorf("Stripe refunded %d in %d, want 200 in 2", total, n)
	}
	// Other tests refund in parallel, so at least: the two refunds put off
	// while Stripe was away, and the two that then went through.
	if d := operatorRefunds("deferred") - deferred; d < 2 {
		t.Errorf("parkgate_operator_refunds_total{outcome=deferred} rose by %v, want 2", d)
	}
	if d := operatorRefunds("succeeded") - succeeded; d < 2 {
		t.Errorf("parkgate_operator_refunds_total{outcome=succeeded} rose by %v, want 2", d)
	}
}

// operatorRefunds reads this process's count of operator refund attempts
// with outcome.
func operatorRefunds(outcome string) float64 {
	mfs, _ := prometheus.DefaultGatherer.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "parkgate_operator_refunds_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// ageRefunds makes every refund's last touch a minute old: past the lease
// of a keyed request in flight and the refund worker's wait.
func (b *payBundle) ageRefunds(t testing.TB) {
	t.Helper()
	if _, err := b.schema.DB.Pool.Exec(t.Context(), `UPDATE refunds SET updated_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
}
