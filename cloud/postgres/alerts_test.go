package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// TestGateDeniedRepeatedly: a gate's denies within the lot's window raise
// one alert when they reach the lot's count, none for further denies of the
// same burst, and one again after a quiet window.
func TestGateDeniedRepeatedly(t *testing.T) {
	t.Parallel()
	type burst struct {
		denies int           // at this gate, one a second
		gap    time.Duration // quiet time before the burst
	}
	cases := []struct {
		name   string
		bursts []burst
		want   int
	}{
		{"FourDenies", []burst{{4, 0}}, 0},
		{"FiveDenies", []burst{{5, 0}}, 1},
		{"TenDenies", []burst{{10, 0}}, 1},
		{"AgainAfterAQuietWindow", []burst{{5, 0}, {5, 2*time.Minute + time.Second}}, 2},
		{"NotAgainWithinTheWindow", []burst{{5, 0}, {5, time.Minute}}, 1},
		{"SpreadBeyondTheWindow", []burst{{3, 0}, {3, 2 * time.Minute}}, 0},
	}
	f := setupEdge(t)
	f.exec(`INSERT INTO webhook_endpoints (id, url, events, secret) VALUES ($1, 'http://127.0.0.1:1/', $2, 'whsec_x')`,
		uuid.NewString(), []string{cloud.AlertGateDeniedRepeatedly})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			lot := f.lot()
			at := time.Now().Add(-time.Hour).Truncate(time.Second)
			for _, b := range c.bursts {
				at = at.Add(b.gap)
				for range b.denies {
					at = at.Add(time.Second)
					e := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "entry-1",
						Direction: protocol.DirectionEntry, Plate: "AB123C", Confidence: 0.9, Decision: protocol.DecisionDeny,
						Reason: "no_reservation", OccurredAt: at, DecidedInUs: 40}
					if _, err := f.db.IngestGateEvent(ctx, e, cloud.Transition{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := f.queryInt(`SELECT count(*) FROM alert_events WHERE type = $1 AND data->>'lot_id' = $2`, cloud.AlertGateDeniedRepeatedly, lot); n != int64(c.want) {
				t.Fatalf("%d alerts, want %d", n, c.want)
			}
			if c.want == 0 {
				return
			}
			raw := f.queryString(`SELECT data::text FROM alert_events WHERE type = $1 AND data->>'lot_id' = $2 ORDER BY created LIMIT 1`, cloud.AlertGateDeniedRepeatedly, lot)
			var named map[string]any
			if err := json.Unmarshal([]byte(raw), &named); err != nil {
				t.Fatal(err)
			}
			if named["gate_id"] != "entry-1" || named["count"] != float64(5) || named["window"] != "2m0s" ||
				named["last_reason"] != "no_reservation" || named["lot_id"] != lot || named["since"] == nil {
				t.Errorf("data %s", raw)
			}
		})
	}
}

// TestGateDeniedThresholdPerLot: the lot's own count and window decide.
func TestGateDeniedThresholdPerLot(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	f.exec(`INSERT INTO webhook_endpoints (id, url, events, secret) VALUES ($1, 'http://127.0.0.1:1/', $2, 'whsec_x')`,
		uuid.NewString(), []string{cloud.AlertGateDeniedRepeatedly})
	lot := f.lot()
	f.exec(`UPDATE lots SET denied_alert_count = 2, denied_alert_window = '10 seconds' WHERE id = $1`, lot)
	at := time.Now().Add(-time.Hour)
	for i, gap := range []time.Duration{0, 11 * time.Second, 5 * time.Second} { // 1, 1 (first fell out), 2 → fires
		at = at.Add(gap)
		e := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "exit-1",
			Direction: protocol.DirectionExit, Plate: "AB123C", Confidence: 0.9, Decision: protocol.DecisionDeny,
			Reason: "low_confidence", OccurredAt: at, DecidedInUs: 40}
		if _, err := f.db.IngestGateEvent(ctx, e, cloud.Transition{}); err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if i == 2 {
			want = 1
		}
		if n := f.queryInt(`SELECT count(*) FROM alert_events WHERE data->>'lot_id' = $1`, lot); n != want {
			t.Fatalf("after deny %d: %d alerts, want %d", i+1, n, want)
		}
	}
	if w := f.queryString(`SELECT data->>'window' FROM alert_events WHERE data->>'lot_id' = $1`, lot); w != "10s" {
		t.Errorf("window %q, want Go's 10s", w)
	}
}

// TestAlertsOfReservations: a cancellation, its refund, a late payment's
// refund and a priced overstay each raise their alert once, in the
// transaction that records them; hold expiry raises none; an endpoint made
// afterwards does not get earlier events, and one not subscribed to a type
// gets none of it.
func TestAlertsOfReservations(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	all, err := f.db.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: "http://127.0.0.1:1/", Events: cloud.AlertTypes, Secret: "whsec_a"})
	if err != nil {
		t.Fatal(err)
	}
	edgesOnly, err := f.db.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: "http://127.0.0.1:2/", Events: []string{cloud.AlertEdgeOffline}, Secret: "whsec_b"})
	if err != nil {
		t.Fatal(err)
	}
	lot := f.lot()
	events := func(typ string) []map[string]any {
		t.Helper()
		rows, err := f.db.Pool.Query(ctx, `SELECT data FROM alert_events WHERE type = $1 AND data->>'lot_id' = $2 ORDER BY created`, typ, lot)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []map[string]any
		for rows.Next() {
			var m map[string]any
			if err := rows.Scan(&m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}

	paid := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 2)
	if out, _, err := f.db.Cancel(ctx, paid, time.Now()); err != nil || out != cloud.CancelDone {
		t.Fatalf("cancel: %v, %v", out, err)
	}
	if out, _, err := f.db.Cancel(ctx, paid, time.Now()); err != nil || out != cloud.CancelAlready {
		t.Fatalf("second cancel: %v, %v", out, err)
	}
	c := events(cloud.AlertReservationCancelled)
	if len(c) != 1 || c[0]["id"] != paid || c[0]["previous_status"] != "CONFIRMED" {
		t.Fatalf("reservation.cancelled %v", c)
	}
	if refund, _ := c[0]["refund"].(map[string]any); refund["amount"] != float64(300) || refund["status"] != "pending" {
		t.Errorf("cancelled with refund %v", c[0]["refund"])
	}
	if n := len(events(cloud.AlertPaymentRefunded)); n != 0 {
		t.Fatalf("%d refund alerts before the provider took the refund", n)
	}
	for range 2 {
		if err := f.db.FinishRefund(ctx, paid, "re_1"); err != nil {
			t.Fatal(err)
		}
	}
	r := events(cloud.AlertPaymentRefunded)
	if len(r) != 1 || r[0]["reservation_id"] != paid || r[0]["amount"] != float64(300) || r[0]["refund_id"] != "re_1" || r[0]["reason"] != "cancellation" {
		t.Fatalf("payment.refunded %v", r)
	}

	// A hold that ran out is no cancellation; its late payment's refund is
	// a refund.
	late := f.reservation(lot, protocol.StatusPending, "CD456E", 4)
	if ok, _, err := f.db.Change(ctx, late, []cloud.Status{cloud.StatusPending}, cloud.StatusExpired, cloud.PaymentFields{}); err != nil || !ok {
		t.Fatalf("expire: %v, %v", ok, err)
	}
	if ok, _, err := f.db.Change(ctx, late, []cloud.Status{cloud.StatusExpired}, cloud.StatusRefunded, cloud.PaymentFields{RefundID: "re_2"}); err != nil || !ok {
		t.Fatalf("refund: %v, %v", ok, err)
	}
	if n := len(events(cloud.AlertReservationCancelled)); n != 1 {
		t.Errorf("%d cancellation alerts after an expiry, want still 1", n)
	}
	if r := events(cloud.AlertPaymentRefunded); len(r) != 2 || r[1]["reservation_id"] != late || r[1]["reason"] != "late_payment" || r[1]["refund_id"] != "re_2" {
		t.Errorf("late payment's payment.refunded %v", r)
	}

	over := f.reservation(lot, protocol.StatusCheckedIn, "EF789G", 6)
	f.exec(`UPDATE reservations SET overstay_status = 'due', overstay_minutes = 40, overstay_exit_at = ends_at + interval '40 minutes' WHERE id = $1`, over)
	for range 2 {
		if amount, err := f.db.PriceOverstay(ctx, over, 900); err != nil || amount != 900 {
			t.Fatalf("price overstay: %d, %v", amount, err)
		}
	}
	if o := events(cloud.AlertReservationOverstayed); len(o) != 1 || o[0]["reservation_id"] != over || o[0]["amount"] != float64(900) || o[0]["minutes"] != float64(40) {
		t.Errorf("reservation.overstayed %v", o)
	}

	// An operator's refund raises payment.refunded once the provider took
	// it, once however often it is settled; a failed one raises nothing.
	op := f.reservation(lot, protocol.StatusConfirmed, "GH321J", 8)
	f.exec(`UPDATE reservations SET payment_intent_id = 'pi_op' WHERE id = $1`, op)
	for _, settle := range []string{cloud.RefundFailed, cloud.RefundSucceeded} {
		amount := int64(100)
		res, err := f.db.CreateRefund(ctx, cloud.RefundParams{ID: uuid.NewString(), ReservationID: op, Amount: &amount})
		if err != nil || res.Outcome != cloud.RefundCreated {
			t.Fatalf("operator refund: %+v, %v", res, err)
		}
		for range 2 {
			if err := f.db.SettleRefund(ctx, res.RefundID, settle); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := events(cloud.AlertPaymentRefunded); len(r) != 3 || r[2]["reservation_id"] != op || r[2]["reason"] != "operator" || r[2]["amount"] != float64(100) {
		t.Errorf("operator refund's payment.refunded %v", r)
	}

	if n := f.queryInt(`SELECT count(*) FROM alert_deliveries WHERE endpoint_id = $1`, all.ID); n != 5 {
		t.Errorf("%d deliveries to the endpoint of every type, want 5", n)
	}
	if n := f.queryInt(`SELECT count(*) FROM alert_deliveries WHERE endpoint_id = $1`, edgesOnly.ID); n != 0 {
		t.Errorf("%d deliveries to the edge.offline endpoint, want 0", n)
	}
	late2, err := f.db.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: "http://127.0.0.1:3/", Events: cloud.AlertTypes, Secret: "whsec_c"})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.queryInt(`SELECT count(*) FROM alert_deliveries WHERE endpoint_id = $1`, late2.ID); n != 0 {
		t.Errorf("an endpoint made later got %d earlier events", n)
	}
}

// TestPurgeAlerts: settled events past the retention go, with their
// deliveries; pending ones and recent ones stay.
func TestPurgeAlerts(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	e, err := f.db.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: "http://127.0.0.1:1/", Events: cloud.AlertTypes, Secret: "whsec_p"})
	if err != nil {
		t.Fatal(err)
	}
	raise := func() string {
		id, err := f.db.Alert(ctx, cloud.AlertEdgeOnline, map[string]string{"gate_id": "g1"})
		if err != nil || id == "" {
			t.Fatalf("alert: %q, %v", id, err)
		}
		return id
	}
	oldDone, oldPending, recentDone := raise(), raise(), raise()
	for _, id := range []string{oldDone, recentDone} {
		if _, err := f.db.AlertDelivered(ctx, id, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	f.exec(`UPDATE alert_events SET created = now() - interval '8 days' WHERE id IN ($1, $2)`, oldDone, oldPending)
	if n, err := f.db.PurgeAlerts(ctx, 7*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1", n, err)
	}
	if n := f.queryInt(`SELECT count(*) FROM alert_events WHERE id IN ($1, $2, $3)`, oldDone, oldPending, recentDone); n != 2 {
		t.Errorf("%d events left, want the pending and the recent one", n)
	}
	if n := f.queryInt(`SELECT count(*) FROM alert_deliveries WHERE event_id = $1`, oldDone); n != 0 {
		t.Errorf("the purged event's delivery is still there")
	}
}
