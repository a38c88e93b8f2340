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
