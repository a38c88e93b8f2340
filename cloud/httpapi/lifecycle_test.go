package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

func bearerOf(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// lotWith creates a one-spot lot with the given body changes.
func (b *bundle) lotWith(t testing.TB, mod func(m map[string]any)) string {
	t.Helper()
	r := b.do(t, "POST", "/v1/lots", lotBody(mod), admin())
	if r.Status != 201 {
		t.Fatalf("create lot: %d %s", r.Status, r.Body)
	}
	return r.json(t)["id"].(string)
}

// paidBooking holds a spot at lot from start for an hour and pays for it:
// the reservation's id and access token, CONFIRMED.
func (b *payBundle) paidBooking(t testing.TB, lot, plate, k string, start time.Time) (id, token string) {
	t.Helper()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, plate, start, start.Add(time.Hour)), key(k))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	id, token = m["id"].(string), m["access_token"].(string)
	if _, err := b.fake.Pay(m["payment"].(map[string]any)["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "CONFIRMED")
	return id, token
}

// history is a reservation's changes in its lot's order: "op:STATUS" for
// the change log's (what the edges hear), "silent:STATUS" for those no edge
// needs (migration 021).
func (b *bundle) history(t testing.TB, id string) string {
	t.Helper()
	rows, err := b.schema.DB.Pool.Query(context.Background(), `
		SELECT CASE WHEN silent = 0 THEN op ELSE 'silent' END || ':' || status FROM lot_history
		 WHERE reservation_id = $1 ORDER BY seq, silent`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		out = append(out, s)
	}
	// lot_history keeps the log's reservation changes (kind ''): one
	// logged under another kind would drop out of it unseen.
	var other int
	if err := b.schema.DB.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE reservation_id = $1 AND kind <> ''`, id).Scan(&other); err != nil || other != 0 {
		t.Errorf("%d changes of %s logged as another kind (%v)", other, id, err)
	}
	return strings.Join(out, ",")
}

// TestAccessToken: the hold's 201 carries a fresh access token, replayed
// byte for byte (paid and free holds, Redis or not); only its hash is on
// the reservation; GET never shows it.
func TestAccessToken(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	paid := b.createLot(t, 2)
	free := b.lotWith(t, func(m map[string]any) { m["hourly_rate"] = map[string]any{"amount": 0, "currency": "EUR"} })
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	tokens := map[string]bool{}
	for name, lot := range map[string]string{"Paid": paid, "Free": free} {
		first := b.do(t, "POST", "/v1/reservations", hold(lot, "TOK1", start, start.Add(time.Hour)), key("tok-"+name))
		if first.Status != 201 {
			t.Fatalf("%s hold: %d %s", name, first.Status, first.Body)
		}
		m := first.json(t)
		tok, _ := m["access_token"].(string)
		if !strings.HasPrefix(tok, "pgat_") || len(tok) < 40 || tokens[tok] {
			t.Fatalf("%s: access_token %q", name, tok)
		}
		tokens[tok] = true
		again := b.do(t, "POST", "/v1/reservations", hold(lot, "TOK1", start, start.Add(time.Hour)), key("tok-"+name))
		if again.Status != 201 || !bytes.Equal(again.Body, first.Body) {
			t.Errorf("%s replay: %d %s\nfirst: %s", name, again.Status, again.Body, first.Body)
		}
		id := m["id"].(string)
		var stored []byte
		var keyed string
		if err := b.schema.DB.Pool.QueryRow(context.Background(), `
			SELECT r.access_token_hash, k.access_token FROM reservations r JOIN idempotency_keys k ON k.reservation_id = r.id
			 WHERE r.id = $1`, id).Scan(&stored, &keyed); err != nil {
			t.Fatal(err)
		}
		if len(stored) != 32 || bytes.Contains(stored, []byte(tok)) || keyed != tok {
			t.Errorf("%s: stored hash %x, key's token %q", name, stored, keyed)
		}
		for _, hdr := range []map[string]string{nil, bearerOf(tok), admin()} {
			if g := b.do(t, "GET", "/v1/reservations/"+id, nil, hdr); g.Status != 200 || bytes.Contains(g.Body, []byte("access_token")) {
				t.Errorf("%s GET: %d %s", name, g.Status, g.Body)
			}
		}
	}
}

// TestCancelPending: a hold is cancelled by its driver (not by anyone
// else), its Checkout Session expired at Stripe, the edge told; a second
// cancel answers the same.
func TestCancelPending(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "CAN1", start, start.Add(time.Hour)), key("c1"))
	m := r.json(t)
	id, tok, sess := m["id"].(string), m["access_token"].(string), m["payment"].(map[string]any)["session_id"].(string)
	other := b.do(t, "POST", "/v1/reservations", hold(lot, "CAN2", start.Add(time.Hour), start.Add(2*time.Hour)), key("c2")).json(t)

	for name, hdr := range map[string]map[string]string{
		"None": nil, "Wrong": bearerOf("pgat_nope"), "OtherDriver": bearerOf(other["access_token"].(string)),
	} {
		if x := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, hdr); x.Status != 401 || x.code() != "unauthorized" {
			t.Errorf("%s: %d %s", name, x.Status, x.Body)
		}
	}
	if x := b.do(t, "POST", "/v1/reservations/6f1c3e44-0000-4000-8000-000000000000/cancel", nil, admin()); x.Status != 404 {
		t.Errorf("unknown: %d %s", x.Status, x.Body)
	}
	c := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, bearerOf(tok))
	if c.Status != 200 || c.json(t)["status"] != "CANCELLED" || c.json(t)["refund"] != nil {
		t.Fatalf("cancel: %d %s", c.Status, c.Body)
	}
	if s, ok := b.fake.Session(sess); !ok || s.Status != "expired" {
		t.Errorf("session at Stripe: %+v", s)
	}
	again := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", "{}", bearerOf(tok))
	if again.Status != 200 || again.json(t)["status"] != "CANCELLED" {
		t.Errorf("second cancel: %d %s", again.Status, again.Body)
	}
	if got := b.history(t, id); got != "silent:PENDING,silent:CANCELLED" {
		t.Errorf("change log: %s", got)
	}
	// The spot is free again at once.
	if x := b.do(t, "POST", "/v1/reservations", hold(lot, "CAN3", start, start.Add(time.Hour)), key("c3")); x.Status != 201 {
		t.Errorf("hold after cancel: %d %s", x.Status, x.Body)
	}
	if x := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", `{"reason":"x"}`, bearerOf(tok)); x.Status != 400 {
		t.Errorf("body with fields: %d %s", x.Status, x.Body)
	}
}

// TestCancelConfirmedRefundsOnce: a confirmed booking cancelled in policy is
// refunded in full, once, under concurrent cancels and redelivered payment
// events; the edge stops opening for it.
func TestCancelConfirmedRefundsOnce(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.lotWith(t, func(m map[string]any) { m["spots"] = 3; m["free_cancellation"] = "30m" })
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "REF1", "r1", start)

	const n = 8
	var wg sync.WaitGroup
	replies := make([]reply, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hdr := bearerOf(tok)
			if i%2 == 1 {
				hdr = admin()
			}
			replies[i] = b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, hdr)
		}()
	}
	wg.Wait()
	for i, r := range replies {
		if r.Status != 200 || r.json(t)["status"] != "CANCELLED" {
			t.Fatalf("cancel %d: %d %s", i, r.Status, r.Body)
		}
	}
	g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)
	ref, _ := g["refund"].(map[string]any)
	if ref == nil || ref["amount"].(float64) != 250 || ref["currency"] != "EUR" || ref["status"] != "succeeded" {
		t.Errorf("refund: %v", g)
	}
	// Stripe tells of the payment again: nothing moves, nothing more is
	// refunded.
	var ids []string
	for _, e := range b.fake.Events() {
		ids = append(ids, e.ID)
	}
	_ = b.fake.Redeliver(ids...)
	_ = b.fake.Flush(context.Background())
	b.waitProcessed(t)
	b.waitStatus(t, id, "CANCELLED")
	if refunds := b.fake.Refunds(); len(refunds) != 1 || refunds[0].Amount != 250 {
		t.Errorf("refunds at Stripe: %+v", refunds)
	}
	if got := b.history(t, id); got != "silent:PENDING,upsert:CONFIRMED,delete:CANCELLED" {
		t.Errorf("change log: %s", got)
	}
}

// TestCancelPolicy: inside the lot's free_cancellation, checked in, or
// over → 409 not_cancellable, nothing changed and nothing refunded.
func TestCancelPolicy(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.lotWith(t, func(m map[string]any) { m["spots"] = 3; m["free_cancellation"] = "2h" })
	if g := b.do(t, "GET", "/v1/lots/"+lot+"/availability", nil, nil); g.Status != 200 {
		t.Fatalf("availability: %d %s", g.Status, g.Body)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	late, tok := b.paidBooking(t, lot, "POL1", "p1", start)
	if x := b.do(t, "POST", "/v1/reservations/"+late+"/cancel", nil, bearerOf(tok)); x.Status != 409 || x.code() != "not_cancellable" {
		t.Errorf("inside the policy window: %d %s", x.Status, x.Body)
	}
	in, tok2 := b.paidBooking(t, lot, "POL2", "p2", start.Add(3*time.Hour))
	ctx := context.Background()
	if _, err := b.schema.DB.Pool.Exec(ctx, `SELECT * FROM parkgate_change($1, '{CONFIRMED}', 'CHECKED_IN')`, in); err != nil {
		t.Fatal(err)
	}
	if x := b.do(t, "POST", "/v1/reservations/"+in+"/cancel", nil, bearerOf(tok2)); x.Status != 409 || x.code() != "not_cancellable" {
		t.Errorf("checked in: %d %s", x.Status, x.Body)
	}
	if len(b.fake.Refunds()) != 0 {
		t.Errorf("refunds: %+v", b.fake.Refunds())
	}
	b.waitStatus(t, late, "CONFIRMED")
}

// TestCancelRefundRetried: Stripe away during the cancel: the booking is
// cancelled with its refund pending, and the worker's retry refunds it once.
func TestCancelRefundRetried(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(3 * time.Hour).Truncate(time.Minute).UTC()
	id, tok := b.paidBooking(t, lot, "RET1", "t1", start)
	b.fake.SetDown(true)
	c := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, bearerOf(tok))
	b.fake.SetDown(false)
	if c.Status != 200 || c.json(t)["refund"].(map[string]any)["status"] != "pending" {
		t.Fatalf("cancel with Stripe away: %d %s", c.Status, c.Body)
	}
	ctx := context.Background()
	if n, err := b.svc.RetryRefunds(ctx, 0, 10); err != nil || n != 1 {
		t.Fatalf("RetryRefunds = %d, %v", n, err)
	}
	if n, _ := b.svc.RetryRefunds(ctx, 0, 10); n != 0 {
		t.Errorf("retried again: %d", n)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t); g["refund"].(map[string]any)["status"] != "succeeded" {
		t.Errorf("after retry: %v", g)
	}
	if len(b.fake.Refunds()) != 1 {
		t.Errorf("refunds: %+v", b.fake.Refunds())
	}
}

// codeKey signs the access codes of setupPayments' service.
var codeKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// TestAccessCodeShown: a booking that opens the gate shows its signed
// access code to its driver and to admins only; a hold or a cancelled
// booking shows none.
func TestAccessCodeShown(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	pending := b.do(t, "POST", "/v1/reservations", hold(lot, "QR2", start, start.Add(time.Hour)), key("q2")).json(t)
	id, tok := b.paidBooking(t, lot, "QR1", "q1", start)
	code := func(hdr map[string]string, rid string) string {
		t.Helper()
		g := b.do(t, "GET", "/v1/reservations/"+rid, nil, hdr)
		if g.Status != 200 {
			t.Fatalf("GET: %d %s", g.Status, g.Body)
		}
		c, _ := g.json(t)["access_code"].(string)
		return c
	}
	if c := code(nil, id); c != "" {
		t.Errorf("public GET shows the code: %s", c)
	}
	if c := code(bearerOf(pending["access_token"].(string)), id); c != "" {
		t.Errorf("another driver's token shows the code: %s", c)
	}
	for name, hdr := range map[string]map[string]string{"Driver": bearerOf(tok), "Admin": admin()} {
		c, err := protocol.ParseAccessCode(code(hdr, id), []ed25519.PublicKey{codeKey.Public().(ed25519.PublicKey)})
		if err != nil || c.ReservationID != id || c.LotID != lot || c.Plate != "QR1" ||
			!c.StartsAt.Equal(start) || !c.EndsAt.Equal(start.Add(time.Hour)) {
			t.Errorf("%s: code %+v, %v", name, c, err)
		}
	}
	if c := code(bearerOf(pending["access_token"].(string)), pending["id"].(string)); c != "" {
		t.Errorf("an unpaid hold shows a code: %s", c)
	}
	if x := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, bearerOf(tok)); x.Status != 200 || bytes.Contains(x.Body, []byte("access_code")) {
		t.Errorf("cancel: %d %s", x.Status, x.Body)
	}
	if c := code(bearerOf(tok), id); c != "" {
		t.Errorf("a cancelled booking shows a code: %s", c)
	}
}

// TestLotPolicies: a lot's free_cancellation and exit_grace are optional Go
// durations at creation, answered as Go prints them; anything else is 400
// with the field.
func TestLotPolicies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", "/v1/lots", lotBody(func(m map[string]any) {}), admin())
	if m := r.json(t); r.Status != 201 || m["free_cancellation"] != "0s" || m["exit_grace"] != "15m0s" {
		t.Errorf("defaults: %d %s", r.Status, r.Body)
	}
	r = b.do(t, "POST", "/v1/lots", lotBody(func(m map[string]any) { m["free_cancellation"] = "24h"; m["exit_grace"] = "0s" }), admin())
	if m := r.json(t); r.Status != 201 || m["free_cancellation"] != "24h0m0s" || m["exit_grace"] != "0s" {
		t.Errorf("set: %d %s", r.Status, r.Body)
	}
	for _, bad := range []any{"-1h", "soon", 3600, "9000h"} {
		r := b.do(t, "POST", "/v1/lots", lotBody(func(m map[string]any) { m["free_cancellation"] = bad }), admin())
		if r.Status != 400 || r.field() != "free_cancellation" {
			t.Errorf("%v: %d %s", bad, r.Status, r.Body)
		}
	}
}
