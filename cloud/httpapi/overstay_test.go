package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// gateEvent stores an open at a gate of the lot for reservation id, as the
// relay's ingest does with what an edge reports.
func (b *payBundle) gateEvent(t testing.TB, lot, id, dir string, at time.Time) {
	t.Helper()
	tr := cloud.Transition{From: []cloud.Status{cloud.StatusConfirmed}, To: cloud.StatusCheckedIn}
	if dir == protocol.DirectionExit {
		tr = cloud.Transition{From: []cloud.Status{cloud.StatusCheckedIn, cloud.StatusConfirmed}, To: cloud.StatusCompleted}
	}
	e := &protocol.GateEvent{V: 1, EventID: uuid.NewString(), LotID: lot, GateID: dir + "-1", Direction: dir,
		Plate: "X", Confidence: 0.9, Decision: protocol.DecisionOpen, Reason: protocol.ReasonValid,
		ReservationID: id, OccurredAt: at}
	if _, err := b.schema.DB.IngestGateEvent(context.Background(), e, tr); err != nil {
		t.Fatal(err)
	}
}

// TestOverstay: an exit past ends_at plus the lot's exit_grace owes the
// rate per started 15 minutes, priced once, with its own Checkout Session,
// paid through it; an exit within the grace owes nothing.
func TestOverstay(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	end := start.Add(time.Hour)
	late, _ := b.paidBooking(t, lot, "OVER1", "ov1", start)
	onTime, _ := b.paidBooking(t, lot, "OVER2", "ov2", start)
	ctx := context.Background()
	if _, err := b.schema.DB.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: "http://127.0.0.1:1/",
		Events: []string{cloud.AlertReservationOverstayed}, Secret: "whsec_over"}); err != nil {
		t.Fatal(err)
	}

	b.gateEvent(t, lot, late, "entry", start)
	b.gateEvent(t, lot, onTime, "entry", start)
	b.gateEvent(t, lot, late, "exit", end.Add(40*time.Minute+time.Second))
	b.gateEvent(t, lot, onTime, "exit", end.Add(15*time.Minute))
	b.gateEvent(t, lot, late, "exit", end.Add(3*time.Hour)) // a second read at the exit: priced already
	// Shown at once, priced at the exit: due, with no session until the
	// worker opens one.
	g := b.do(t, "GET", "/v1/reservations/"+late, nil, nil).json(t)
	if o, _ := g["overstay"].(map[string]any); o == nil || o["minutes"].(float64) != 41 || o["amount"].(float64) != 188 ||
		o["currency"] != "EUR" || o["status"] != "due" || o["payment"] != nil {
		t.Fatalf("overstay before the worker ran: %v", g)
	}
	// The rate the lot charges from now on does not reprice an exit that
	// happened: the worker opens the session for the amount shown.
	if _, err := b.schema.DB.Pool.Exec(ctx, `UPDATE lots SET hourly_rate_amount = hourly_rate_amount * 7 WHERE id = $1`, lot); err != nil {
		t.Fatal(err)
	}
	if n, err := b.svc.ChargeOverstays(ctx, 10); err != nil || n != 1 {
		t.Fatalf("ChargeOverstays = %d, %v", n, err)
	}
	if n, err := b.svc.ChargeOverstays(ctx, 10); err != nil || n != 0 {
		t.Errorf("charged again: %d, %v", n, err)
	}
	// reservation.overstayed once, for the late exit only, priced as shown
	// (it was never raised once the exit's transaction priced overstays).
	var alerts []map[string]any
	rows, err := b.schema.DB.Pool.Query(ctx, `SELECT data FROM alert_events WHERE type = 'reservation.overstayed' AND data->>'lot_id' = $1`, lot)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var m map[string]any
		if err := rows.Scan(&m); err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, m)
	}
	rows.Close()
	if len(alerts) != 1 || alerts[0]["reservation_id"] != late || alerts[0]["amount"] != float64(188) || alerts[0]["minutes"] != float64(41) {
		t.Errorf("reservation.overstayed alerts %v, want one for %s", alerts, late)
	}
	g = b.do(t, "GET", "/v1/reservations/"+late, nil, nil).json(t)
	o, _ := g["overstay"].(map[string]any)
	if g["status"] != "COMPLETED" || o == nil || o["minutes"].(float64) != 41 || o["amount"].(float64) != 188 ||
		o["currency"] != "EUR" || o["status"] != "due" {
		t.Fatalf("overstay: %v", g)
	}
	pay := o["payment"].(map[string]any)
	if s, ok := b.fake.Session(pay["session_id"].(string)); !ok || s.AmountTotal != 188 {
		t.Errorf("session at Stripe: %+v", s)
	}
	if g := b.do(t, "GET", "/v1/reservations/"+onTime, nil, nil).json(t); g["overstay"] != nil || g["status"] != "COMPLETED" {
		t.Errorf("exit within the grace: %v", g)
	}
	// The session expires unpaid: the overstay stays due, and the worker
	// opens another session for it.
	if err := b.fake.Expire(pay["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	_ = b.fake.Flush(ctx)
	b.waitProcessed(t)
	if n, err := b.svc.ChargeOverstays(ctx, 10); err != nil || n != 1 {
		t.Fatalf("ChargeOverstays after expiry = %d, %v", n, err)
	}
	o = b.do(t, "GET", "/v1/reservations/"+late, nil, nil).json(t)["overstay"].(map[string]any)
	next := o["payment"].(map[string]any)
	if o["status"] != "due" || o["amount"].(float64) != 188 || next["session_id"] == pay["session_id"] {
		t.Fatalf("after the session expired: %v", o)
	}
	if _, err := b.fake.Pay(next["session_id"].(string)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		o := b.do(t, "GET", "/v1/reservations/"+late, nil, nil).json(t)["overstay"].(map[string]any)
		if o["status"] == "paid" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("overstay still %v", o)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(b.fake.Refunds()) != 0 {
		t.Errorf("refunds: %+v", b.fake.Refunds())
	}
}

// TestOverstayFreeLot: a late exit from a free lot owes nothing, and its
// overstay is shown settled as soon as the exit is stored, with no session.
func TestOverstayFreeLot(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	r := b.do(t, "POST", "/v1/lots", lotBody(func(m map[string]any) {
		m["hourly_rate"] = map[string]any{"amount": 0, "currency": "EUR"}
	}), admin())
	if r.Status != 201 {
		t.Fatalf("free lot: %d %s", r.Status, r.Body)
	}
	lot := r.json(t)["id"].(string)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	h := b.do(t, "POST", "/v1/reservations", hold(lot, "FREEOV", start, start.Add(time.Hour)), key("freeov"))
	if h.Status != 201 {
		t.Fatalf("hold: %d %s", h.Status, h.Body)
	}
	id := h.json(t)["id"].(string)
	b.gateEvent(t, lot, id, "entry", start)
	b.gateEvent(t, lot, id, "exit", start.Add(3*time.Hour))
	g := b.do(t, "GET", "/v1/reservations/"+id, nil, nil).json(t)
	if o, _ := g["overstay"].(map[string]any); o == nil || o["minutes"].(float64) != 120 || o["amount"].(float64) != 0 ||
		o["status"] != "paid" || o["payment"] != nil {
		t.Fatalf("free lot's overstay: %v", g)
	}
	if n, err := b.svc.ChargeOverstays(context.Background(), 10); err != nil || n != 0 {
		t.Errorf("ChargeOverstays = %d, %v; want nothing left to do", n, err)
	}
}
