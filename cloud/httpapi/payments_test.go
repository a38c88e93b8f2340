package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/bus/pgbus"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/cloud/stripepay"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
)

const whSecret = "whsec_test_secret"

type payBundle struct {
	*bundle
	fake  *stripefake.Fake
	proxy *tcpproxy.Proxy // between the service and Postgres, when asked for
	bus   *pgbus.Bus
	woken *atomic.Int64 // the relay's wake-ups (svc.Changed)
}

// setupPayments wires the cloud as parkcloud does with payments on: the
// Stripe stand-in, stripepay over go-retryablehttp, the Postgres payment
// bus with its workers, the signed webhook.
func setupPayments(t testing.TB, holdTTL time.Duration) *payBundle {
	return setupPaymentsGuarded(t, holdTTL, nil)
}

func setupPaymentsGuarded(t testing.TB, holdTTL time.Duration, g *guard.Guard) *payBundle {
	return setupPaymentsWith(t, holdTTL, g, false)
}

// setupPaymentsWith is setupPaymentsGuarded, with the service reaching
// Postgres through a TCP proxy the test can cut when proxied is set.
func setupPaymentsWith(t testing.TB, holdTTL time.Duration, g *guard.Guard, proxied bool) *payBundle {
	return setupPaymentsLimited(t, holdTTL, g, proxied, false)
}

// setupPaymentsLimited is setupPaymentsWith, with g's rate limits on the
// API as parkcloud has them when limited is set.
func setupPaymentsLimited(t testing.TB, holdTTL time.Duration, g *guard.Guard, proxied, limited bool) *payBundle {
	t.Helper()
	s := pgtest.New(t, 40)
	db := s.DB
	var proxy *tcpproxy.Proxy
	if proxied {
		db, proxy = proxiedDB(t, s, 40)
	}
	fo := stripefake.Options{WebhookSecret: whSecret, RetryBase: 20 * time.Millisecond, RetryCap: 200 * time.Millisecond}
	if proxied {
		fo.MaxAttempts = 50 // ten seconds of retries: an outage must outlast them, as Stripe's three days outlast ours
	}
	fake := stripefake.New(fo)
	fsrv := httptest.NewServer(fake)
	t.Cleanup(fsrv.Close)
	// Checkout sends the driver back to the reservation page, as parkcloud's
	// default does: the server's address is known before it serves.
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	sp, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: fsrv.URL,
		SuccessURL: base + "/reservations/" + stripepay.ReservationPlaceholder + "?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:  base + "/", Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc := booking.New(db, sp, nil, nil, holdTTL)
	svc.DecodeLegacy = stripepay.DecodeEvent // as parkcloud does
	woken := new(atomic.Int64)
	svc.Changed = func(string) { woken.Add(1) }
	if g != nil {
		svc.Guard = g
	}
	pb := pgbus.New(db.Pool, pgbus.Options{Workers: 16, PollInterval: 100 * time.Millisecond, Lease: 2 * time.Second})
	wh := &booking.Webhooks{Verify: stripepay.Verifier{Secrets: []string{whSecret}}.Verify, Bus: pb}
	api := &httpapi.Server{Booking: svc, DB: db, AdminToken: adminToken, Webhooks: wh, AccessCodes: booking.AccessCodes(codeKey)}
	if g != nil {
		api.Cache = g
		if limited {
			api.Limiter = g
		}
	}
	srv.Config.Handler = api.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	fake.SetWebhook(srv.URL+"/v1/payments/webhook", whSecret)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 { // two workers: two replicas
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = pb.Run(ctx, svc.HandleMessage)
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &payBundle{bundle: &bundle{srv: srv, schema: s, svc: svc}, fake: fake, proxy: proxy, bus: pb, woken: woken}
}

func (b *payBundle) waitStatus(t testing.TB, id, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.do(t, "GET", "/v1/reservations/"+id, nil, nil)
		if r.json(t)["status"] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reservation %s: status %v, want %s", id, r.json(t)["status"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProcessed waits until the bus has handled every recorded event, so
// assertions about duplicates see their effect, not their absence.
func (b *payBundle) waitProcessed(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := b.schema.DB.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM payment_events WHERE processed_at IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payment events still unprocessed", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expireHold makes a hold's time run out and lets the expiry worker end it.
func (b *payBundle) expireHold(t testing.TB, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.ExpireDueHolds(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRelayWokenForEdgeChanges: the relay is woken for the changes the
// edges hear of and for no other: a PENDING hold, its expiry, its
// cancellation and a lapsed hold's refund are silent (migration 021); a
// payment's CONFIRMED is the booking's one change for its edge, and the
// cancellation of a paid booking its second.
func TestRelayWokenForEdgeChanges(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	paid, _ := b.paidBooking(t, lot, "WAKE1", "w1", start)
	if n := b.woken.Load(); n != 1 {
		t.Errorf("a hold and its payment woke the relay %d times, want once (the CONFIRMED)", n)
	}
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "WAKE2", start, start.Add(time.Hour)), key("w2"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	lapsed := r.json(t)["id"].(string)
	b.expireHold(t, lapsed)
	b.waitStatus(t, lapsed, "EXPIRED")
	// Paid after all: refunded, and still nothing for the edges.
	if _, err := b.fake.Pay(r.json(t)["payment"].(map[string]any)["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, lapsed, "REFUNDED")
	if n := b.woken.Load(); n != 1 {
		t.Errorf("the relay was woken %d times, want once: a lapsed hold and its refund are no edge's", n)
	}
	if got := b.history(t, paid); got != "silent:PENDING,upsert:CONFIRMED" {
		t.Errorf("paid booking: %s", got)
	}
	if got := b.history(t, lapsed); got != "silent:PENDING,silent:EXPIRED,silent:REFUNDED" {
		t.Errorf("lapsed hold: %s", got)
	}

	r = b.do(t, "POST", "/v1/reservations", hold(lot, "WAKE3", start.Add(2*time.Hour), start.Add(3*time.Hour)), key("w3"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	dropped := r.json(t)["id"].(string)
	if c := b.do(t, "POST", "/v1/reservations/"+dropped+"/cancel", nil, bearerOf(r.json(t)["access_token"].(string))); c.Status != 200 || c.json(t)["status"] != "CANCELLED" {
		t.Fatalf("cancel the hold: %d %s", c.Status, c.Body)
	}
	if n := b.woken.Load(); n != 1 {
		t.Errorf("cancelling a PENDING hold woke the relay: %d wake-ups, want still 1", n)
	}
	if got := b.history(t, dropped); got != "silent:PENDING,silent:CANCELLED" {
		t.Errorf("cancelled hold: %s", got)
	}
	if c := b.do(t, "POST", "/v1/reservations/"+paid+"/cancel", nil, admin()); c.Status != 200 || c.json(t)["status"] != "CANCELLED" {
		t.Fatalf("cancel the paid booking: %d %s", c.Status, c.Body)
	}
	if n := b.woken.Load(); n != 2 {
		t.Errorf("cancelling a paid booking woke the relay %d times in all, want 2: its edge must hear of it", n)
	}
	if got := b.history(t, paid); got != "silent:PENDING,upsert:CONFIRMED,delete:CANCELLED" {
		t.Errorf("paid booking, cancelled: %s", got)
	}
}

// TestPaymentJourney: hold → Checkout Session at the stand-in → pay →
// signed webhook → CONFIRMED, visible through GET.
func TestPaymentJourney(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "PAY1", start, start.Add(time.Hour)), key("p1"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	pay := m["payment"].(map[string]any)
	if pay["provider"] != "stripe" || pay["session_id"] == "" || pay["url"] == "" {
		t.Fatalf("payment: %v", pay)
	}
	id := m["id"].(string)
	b.waitStatus(t, id, "PENDING") // a redirect confirms nothing
	if _, err := b.fake.Pay(pay["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "CONFIRMED")

	// The same event delivered five more times, concurrently: no change.
	var ids []string
	for _, e := range b.fake.Events() {
		ids = append(ids, e.ID)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.fake.Redeliver(ids...) }()
	}
	wg.Wait()
	_ = b.fake.Flush(context.Background())
	b.waitProcessed(t)
	var n int
	_ = b.schema.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE reservation_id = $1 AND status = 'CONFIRMED'`, id).Scan(&n)
	if n != 1 {
		t.Errorf("%d CONFIRMED changes, want 1", n)
	}
}

// TestLegacyBusEvent: an event the bus recorded raw, as the release before
// decoded events did, is still handled.
func TestLegacyBusEvent(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "OLD1", start, start.Add(time.Hour)), key("old1"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	id := r.json(t)["id"].(string)
	raw := fmt.Sprintf(`{"id":"evt_legacy_1","object":"event","type":"checkout.session.completed","created":%d,
		"data":{"object":{"id":"cs_legacy_1","object":"checkout.session","client_reference_id":%q,
		"payment_status":"paid","payment_intent":"pi_legacy_1"}}}`, time.Now().Unix(), id)
	if _, err := b.bus.Publish(context.Background(), bus.Message{ID: "evt_legacy_1", Key: id,
		Type: "checkout.session.completed", Payload: []byte(raw)}); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "CONFIRMED")
}

// TestLatePaymentRefundedOnce: a payment that completes after the hold
// expired is refunded exactly once, however often its event arrives.
func TestLatePaymentRefundedOnce(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "LATE1", start, start.Add(time.Hour)), key("l1"))
	m := r.json(t)
	id, sess := m["id"].(string), m["payment"].(map[string]any)["session_id"].(string)
	ctx := context.Background()
	b.expireHold(t, id)
	b.waitStatus(t, id, "EXPIRED")
	if _, err := b.fake.Pay(sess); err != nil { // slipped through before the session was expired
		t.Fatal(err)
	}
	var ids []string
	for _, e := range b.fake.Events() {
		ids = append(ids, e.ID)
	}
	for range 3 {
		_ = b.fake.Redeliver(ids...)
	}
	b.waitStatus(t, id, "REFUNDED")
	_ = b.fake.Flush(ctx)
	b.waitProcessed(t)
	if refunds := b.fake.Refunds(); len(refunds) != 1 {
		t.Errorf("%d refunds at Stripe, want 1", len(refunds))
	}
}

// TestForgedWebhook: bad signatures are refused with 400 and record nothing.
func TestForgedWebhook(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	body := []byte(`{"id":"evt_forged","type":"checkout.session.completed","data":{"object":{"id":"cs_x","object":"checkout.session","client_reference_id":"r","payment_status":"paid"}}}`)
	now := time.Now()
	cases := map[string]string{
		"Missing":     "",
		"WrongSecret": stripefake.SignatureHeader(body, now, "whsec_other"),
		"Stale":       stripefake.SignatureHeader(body, now.Add(-6*time.Minute), whSecret),
		"Garbage":     "t=abc,v1=zz",
	}
	for name, sig := range cases {
		hdr := map[string]string{}
		if sig != "" {
			hdr["Stripe-Signature"] = sig
		}
		if r := b.do(t, "POST", "/v1/payments/webhook", body, hdr); r.Status != 400 || r.code() != "invalid_signature" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	tampered := append([]byte{}, body...)
	sig := stripefake.SignatureHeader(body, now, whSecret)
	tampered[10] = 'X'
	if r := b.do(t, "POST", "/v1/payments/webhook", tampered, map[string]string{"Stripe-Signature": sig}); r.Status != 400 {
		t.Errorf("tampered: %d %s", r.Status, r.Body)
	}
	// X-Signature in the same format is accepted.
	if r := b.do(t, "POST", "/v1/payments/webhook", body, map[string]string{"X-Signature": sig}); r.Status != 200 {
		t.Errorf("X-Signature: %d %s", r.Status, r.Body)
	}
	var n int
	_ = b.schema.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM payment_events`).Scan(&n)
	if n != 1 {
		t.Errorf("%d events recorded, want only the good one", n)
	}
}

// TestStripeDown: a hold while Stripe is unreachable answers 503, keeps no
// hold on the spot, and the retry with the same key succeeds later.
func TestStripeDown(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	b.fake.SetDown(true)
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "DOWN1", start, start.Add(time.Hour)), key("d1"))
	if r.Status != 503 || r.code() != "unavailable" {
		t.Fatalf("stripe down: %d %s", r.Status, r.Body)
	}
	b.fake.SetDown(false)
	// The spot is free for someone else, and the retry works too.
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "DOWN1", start, start.Add(time.Hour)), key("d1")); x.Status != 201 {
		t.Fatalf("retry: %d %s", x.Status, x.Body)
	}
	assertNoOverlap(t, b.bundle)
}

// TestSessionClosedAfterHold: when a hold ends its Checkout Session is
// expired at Stripe, so Stripe stops taking money for it.
func TestSessionClosedAfterHold(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "CL1", start, start.Add(time.Hour)), key("c1"))
	m := r.json(t)
	id, sess := m["id"].(string), m["payment"].(map[string]any)["session_id"].(string)
	ctx := context.Background()
	b.expireHold(t, id)
	if n, err := b.svc.CloseSessions(ctx, 10); err != nil || n != 1 {
		t.Fatalf("CloseSessions = %d, %v", n, err)
	}
	if s, ok := b.fake.Session(sess); !ok || s.Status != "expired" {
		t.Errorf("session at Stripe: %+v", s)
	}
	if n, _ := b.svc.CloseSessions(ctx, 10); n != 0 {
		t.Errorf("closed again: %d", n)
	}
	b.waitStatus(t, id, "EXPIRED")
}

// TestAvailabilityCacheWriteThrough: with the Redis cache on, availability
// is right after every kind of change: hold, expiry, confirm, refund.
func TestAvailabilityCacheWriteThrough(t *testing.T) {
	t.Parallel()
	g, _, _ := testGuard(t, "cachetest")
	b := setupPaymentsGuarded(t, 10*time.Minute, g)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	end := start.Add(time.Hour)
	path := fmt.Sprintf("/v1/lots/%s/availability?starts_at=%s&ends_at=%s", lot, start.Format(time.RFC3339), end.Format(time.RFC3339))
	avail := func(want float64, when string) {
		t.Helper()
		for range 2 { // the second read is served from the cache
			if got := b.do(t, "GET", path, nil, nil).json(t)["available_spots"].(float64); got != want {
				t.Fatalf("%s: available %v, want %v", when, got, want)
			}
		}
	}
	ctx := context.Background()
	avail(1, "empty")
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "CA1", start, end), key("a1"))
	id1, sess1 := r.json(t)["id"].(string), r.json(t)["payment"].(map[string]any)["session_id"].(string)
	avail(0, "after hold")
	b.expireHold(t, id1)
	avail(1, "after expiry")
	r = b.do(t, "POST", "/v1/reservations", hold(lot, "CA2", start, end), key("a2"))
	id2, sess2 := r.json(t)["id"].(string), r.json(t)["payment"].(map[string]any)["session_id"].(string)
	avail(0, "after second hold")
	if _, err := b.fake.Pay(sess2); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id2, "CONFIRMED")
	avail(0, "after confirm")
	// The first hold's money arrives late: refunded, the spot stays taken
	// by the confirmed one.
	if _, err := b.fake.Pay(sess1); err == nil {
		b.waitStatus(t, id1, "REFUNDED")
	}
	avail(0, "after refund of another hold")
	// Checked out early: the spot is free again for the rest.
	if _, _, err := b.schema.DB.Change(ctx, id2, []cloud.Status{cloud.StatusConfirmed}, cloud.StatusCompleted, cloud.PaymentFields{}); err != nil {
		t.Fatal(err)
	}
	g.InvalidateLot(ctx, lot) // what parkcloud wires as the ingest's OnChange
	avail(1, "after check-out")
}

// TestSessionMadeFirst (issue 17): on a calm lot, for a key Redis has no
// answer under, the Checkout Session is made before the hold, and the hold
// is final as it commits: the session is on the row and the key is stored
// done with no body, in the hold's one transaction. A retry Redis has lost
// the answer of is replayed from Postgres, after the booking was paid, as
// the first answer byte for byte. The sessions made for attempts that made
// no hold (that retry, and a hold that found no spot) are expired at the
// provider, never handed to anyone.
func TestSessionMadeFirst(t *testing.T) {
	t.Parallel()
	g, rdb, ns := testGuard(t, "sessionfirst")
	b := setupPaymentsGuarded(t, 10*time.Minute, g)
	ctx := context.Background()
	discarded := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var open, expired int
			for _, s := range b.fake.Sessions() {
				switch {
				case s.Status == "open":
					open++
				case s.Status == "expired":
					expired++
				}
			}
			if open == 0 && expired == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("sessions not paid: %d open, %d expired; want %d expired", open, expired, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	body := hold(lot, "SF1", start, start.Add(time.Hour))
	first := b.do(t, "POST", "/v1/reservations", body, key("sf-1"))
	if first.Status != 201 {
		t.Fatalf("hold: %d %s", first.Status, first.Body)
	}
	m := first.json(t)
	id, sid := m["id"].(string), m["payment"].(map[string]any)["session_id"].(string)
	var rowSession string
	var keyStatus *int
	var keyBody []byte
	var locked *time.Time
	if err := b.schema.DB.Pool.QueryRow(ctx, `
		SELECT r.checkout_session_id, k.response_status, k.response_body, k.locked_until
		  FROM reservations r JOIN idempotency_keys k ON k.reservation_id = r.id
		 WHERE r.id = $1`, id).Scan(&rowSession, &keyStatus, &keyBody, &locked); err != nil {
		t.Fatal(err)
	}
	if rowSession != sid || keyStatus == nil || *keyStatus != 201 || keyBody != nil || locked != nil {
		t.Errorf("row session %q (answered %q), key status %v body %q lease %v; want the session on the row and the key done with no body",
			rowSession, sid, keyStatus, keyBody, locked)
	}
	s, ok := b.fake.Session(sid)
	if !ok || s.ClientReferenceID != id || s.IdempotencyKey != "parkgate-checkout-"+id || s.Status != "open" {
		t.Errorf("session at the provider: %+v", s)
	}

	if _, err := b.fake.Pay(sid); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "CONFIRMED")
	if n, err := rdb.Del(ctx, ns+":idem:sf-1").Result(); err != nil || n != 1 {
		t.Fatalf("Redis' copy of the answer: %d, %v", n, err)
	}
	again := b.do(t, "POST", "/v1/reservations", body, key("sf-1"))
	if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
		t.Errorf("replay after payment: %d %s\nfirst: %s", again.Status, again.Body, first.Body)
	}
	discarded(1)

	full := b.do(t, "POST", "/v1/reservations", hold(lot, "SF2", start, start.Add(time.Hour)), key("sf-2"))
	if full.Status != 409 || full.code() != "no_availability" {
		t.Fatalf("hold of the taken spot: %d %s", full.Status, full.Body)
	}
	discarded(2)
}
