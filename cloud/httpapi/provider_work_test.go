package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// refusal is a reservation's row in provider_retries (migration 029).
type refusal struct {
	attempts int
	in       time.Duration // from now to retry_at
	reason   string
}

// refusals returns work's held-back reservations, by id.
func (b *payBundle) refusals(t testing.TB, work cloud.ProviderWork) map[string]refusal {
	t.Helper()
	rows, err := b.schema.DB.Pool.Query(context.Background(), `
		SELECT reservation_id::text, attempts, extract(epoch FROM retry_at - now()), last_error
		  FROM provider_retries WHERE work = $1`, string(work))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]refusal{}
	for rows.Next() {
		var id string
		var r refusal
		var secs float64
		if err := rows.Scan(&id, &r.attempts, &secs, &r.reason); err != nil {
			t.Fatal(err)
		}
		r.in = time.Duration(secs * float64(time.Second))
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dueAgain makes every held-back reservation of work due for its queue.
func (b *payBundle) dueAgain(t testing.TB, work cloud.ProviderWork) {
	t.Helper()
	if _, err := b.schema.DB.Pool.Exec(context.Background(),
		`UPDATE provider_retries SET retry_at = now() - interval '1 second' WHERE work = $1`, string(work)); err != nil {
		t.Fatal(err)
	}
}

// endedHolds holds a spot at lot from start for an hour for each plate and
// ends each hold unpaid: their ids and Checkout Sessions, still open.
func (b *payBundle) endedHolds(t testing.TB, lot string, start time.Time, plates ...string) (ids, sessions []string) {
	t.Helper()
	for _, plate := range plates {
		r := b.do(t, "POST", "/v1/reservations", hold(lot, plate, start, start.Add(time.Hour)), key("ended-"+plate))
		if r.Status != 201 {
			t.Fatalf("hold %s: %d %s", plate, r.Status, r.Body)
		}
		m := r.json(t)
		ids = append(ids, m["id"].(string))
		sessions = append(sessions, m["payment"].(map[string]any)["session_id"].(string))
		b.expireHold(t, ids[len(ids)-1])
	}
	return ids, sessions
}

// wantRefusal checks that id is held back once more than before, for
// about the backoff given, for the reason given.
func wantRefusal(t *testing.T, got map[string]refusal, id string, attempts int, backoff time.Duration, reason string) {
	t.Helper()
	r, ok := got[id]
	if !ok || len(got) != 1 {
		t.Fatalf("held back: %+v; want %s alone", got, id)
	}
	if r.attempts != attempts || r.in < backoff-10*time.Second || r.in > backoff || !strings.Contains(r.reason, reason) {
		t.Errorf("refusal of %s: %+v; want attempt %d, retry in about %s, for %q", id, r, attempts, backoff, reason)
	}
}

// TestCloseSessionsPastRefusal: a session Stripe refuses to expire (one
// it does not know: made under other keys) is held back, and the sessions
// behind it are closed; it stopped the queue for good before, asked first
// every tick. It is asked again after a minute, then after two.
func TestCloseSessionsPastRefusal(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 3)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	ctx := context.Background()
	ids, sessions := b.endedHolds(t, lot, start, "REF1", "REF2", "REF3")
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE reservations SET checkout_session_id = 'cs_test_unknown',
		updated_at = now() - interval '1 hour' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}

	if n, err := b.svc.CloseSessions(ctx, 10); n != 2 || err != nil {
		t.Fatalf("CloseSessions = %d, %v; want the 2 behind the refused one", n, err)
	}
	for _, sess := range sessions[1:] {
		if s, ok := b.fake.Session(sess); !ok || s.Status != "expired" {
			t.Errorf("session %s at Stripe: %+v", sess, s)
		}
	}
	wantRefusal(t, b.refusals(t, cloud.WorkCloseSession), ids[0], 1, time.Minute, "No such checkout.session")

	// Held back: not asked (a second refusal would count).
	if n, err := b.svc.CloseSessions(ctx, 10); n != 0 || err != nil {
		t.Fatalf("CloseSessions while held back = %d, %v", n, err)
	}
	wantRefusal(t, b.refusals(t, cloud.WorkCloseSession), ids[0], 1, time.Minute, "No such checkout.session")

	b.dueAgain(t, cloud.WorkCloseSession)
	if n, err := b.svc.CloseSessions(ctx, 10); n != 0 || err != nil {
		t.Fatalf("CloseSessions once due again = %d, %v", n, err)
	}
	wantRefusal(t, b.refusals(t, cloud.WorkCloseSession), ids[0], 2, 2*time.Minute, "No such checkout.session")
}

// TestRetryRefundsPastRefusal: a cancellation's refund Stripe refuses (a
// payment intent it does not know) is held back, and the refund behind it
// is taken.
func TestRetryRefundsPastRefusal(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(3 * time.Hour).Truncate(time.Minute).UTC()
	ctx := context.Background()
	bad, tokBad := b.paidBooking(t, lot, "RR1", "rr1", start)
	good, tokGood := b.paidBooking(t, lot, "RR2", "rr2", start)
	b.fake.SetDown(true)
	for _, c := range []struct{ id, tok string }{{bad, tokBad}, {good, tokGood}} {
		if r := b.do(t, "POST", "/v1/reservations/"+c.id+"/cancel", nil, bearerOf(c.tok)); r.Status != 200 {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
	}
	b.fake.SetDown(false)
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE reservations SET payment_intent_id = 'pi_unknown',
		updated_at = now() - interval '1 hour' WHERE id = $1`, bad); err != nil {
		t.Fatal(err)
	}

	if n, err := b.svc.RetryRefunds(ctx, 0, 10); n != 1 || err != nil {
		t.Fatalf("RetryRefunds = %d, %v; want the one behind the refused one", n, err)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+good, nil, nil).json(t); g["refund"].(map[string]any)["status"] != "succeeded" {
		t.Errorf("the refund behind: %v", g["refund"])
	}
	wantRefusal(t, b.refusals(t, cloud.WorkRefund), bad, 1, time.Minute, "No such payment_intent")
	if n, err := b.svc.RetryRefunds(ctx, 0, 10); n != 0 || err != nil {
		t.Fatalf("RetryRefunds while held back = %d, %v", n, err)
	}
	wantRefusal(t, b.refusals(t, cloud.WorkRefund), bad, 1, time.Minute, "No such payment_intent")
	if g := b.do(t, "GET", "/v1/reservations/"+bad, nil, nil).json(t); g["refund"].(map[string]any)["status"] != "pending" {
		t.Errorf("the refused refund: %v; want still pending", g["refund"])
	}
}

// TestChargeOverstaysPastRefusal: an overstay whose session Stripe refuses
// (an amount over its ceiling) is held back, and the overstay behind it
// gets its session.
func TestChargeOverstaysPastRefusal(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	end := start.Add(time.Hour)
	ctx := context.Background()
	bad, _ := b.paidBooking(t, lot, "OVR1", "ovr1", start)
	good, _ := b.paidBooking(t, lot, "OVR2", "ovr2", start)
	for _, id := range []string{bad, good} {
		b.gateEvent(t, lot, id, "entry", start)
	}
	b.gateEvent(t, lot, bad, "exit", end.Add(time.Hour))
	b.gateEvent(t, lot, good, "exit", end.Add(2*time.Hour))
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE reservations SET overstay_amount = 100000000 WHERE id = $1`, bad); err != nil {
		t.Fatal(err)
	}

	if n, err := b.svc.ChargeOverstays(ctx, 10); n != 1 || err != nil {
		t.Fatalf("ChargeOverstays = %d, %v; want the one behind the refused one", n, err)
	}
	if o := b.do(t, "GET", "/v1/reservations/"+good, nil, nil).json(t)["overstay"].(map[string]any); o["payment"] == nil {
		t.Errorf("the overstay behind has no session: %v", o)
	}
	wantRefusal(t, b.refusals(t, cloud.WorkOverstaySession), bad, 1, time.Minute, "no more than 99999999")
	if n, err := b.svc.ChargeOverstays(ctx, 10); n != 0 || err != nil {
		t.Fatalf("ChargeOverstays while held back = %d, %v", n, err)
	}
	wantRefusal(t, b.refusals(t, cloud.WorkOverstaySession), bad, 1, time.Minute, "no more than 99999999")
}

// TestProviderWorkStripeAway: Stripe away is no refusal for any of the
// workers that ask it to act: nothing is held back, each pass ends with
// the outage (an operator's refund's too: each next one would wait out
// the same timeout), and the next pass does the work.
func TestProviderWorkStripeAway(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 3)
	start := time.Now().Add(3 * time.Hour).Truncate(time.Minute).UTC()
	ctx := context.Background()
	cancelled, tok := b.paidBooking(t, lot, "AW1", "aw1", start)
	overstayed, _ := b.paidBooking(t, lot, "AW2", "aw2", start)
	refunded, _ := b.paidBooking(t, lot, "AW3", "aw3", start)
	b.gateEvent(t, lot, overstayed, "entry", start)
	b.gateEvent(t, lot, overstayed, "exit", start.Add(3*time.Hour))
	b.endedHolds(t, lot, start.Add(6*time.Hour), "AW4", "AW5")
	b.fake.SetDown(true)
	if r := b.do(t, "POST", "/v1/reservations/"+cancelled+"/cancel", nil, bearerOf(tok)); r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	for range 2 {
		if r := b.do(t, "POST", "/v1/reservations/"+refunded+"/refund", map[string]any{"amount": 100}, admin()); r.Status != 503 {
			t.Fatalf("refund with Stripe away: %d %s", r.Status, r.Body)
		}
	}
	b.ageRefunds(t)

	passes := []struct {
		name string
		run  func() (int, error)
		want int
	}{
		// The 2 ended holds', and the cancelled booking's (paid: closed as it is).
		{"CloseSessions", func() (int, error) { return b.svc.CloseSessions(ctx, 10) }, 3},
		{"RetryRefunds", func() (int, error) { return b.svc.RetryRefunds(ctx, 0, 10) }, 1},
		{"ChargeOverstays", func() (int, error) { return b.svc.ChargeOverstays(ctx, 10) }, 1},
		{"RetryOperatorRefunds", func() (int, error) { return b.svc.RetryOperatorRefunds(ctx, 0, 10) }, 2},
	}
	for _, p := range passes {
		if n, err := p.run(); n != 0 || err == nil || cloud.ErrorCode(err) == cloud.EPaymentProvider {
			t.Errorf("%s with Stripe away = %d, %v; want none and the outage", p.name, n, err)
		}
	}
	var held int
	if err := b.schema.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM provider_retries`).Scan(&held); err != nil || held != 0 {
		t.Errorf("%d held back for an outage, %v", held, err)
	}
	b.fake.SetDown(false)
	for _, p := range passes {
		if n, err := p.run(); n != p.want || err != nil {
			t.Errorf("%s after = %d, %v; want %d", p.name, n, err, p.want)
		}
	}
}
