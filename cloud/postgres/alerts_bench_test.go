package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// BenchmarkIngestGateEventAlerts: what a stored gate event costs, one after the
// other at one gate with a status row: an open with nothing to move (the
// insert and the last_seen touch) against a deny (also the repeated-deny
// count and its detector row; the lot's threshold is reached, so alerts
// fire once per quiet window).
func BenchmarkIngestGateEventAlerts(b *testing.B) {
	for _, decision := range []string{protocol.DecisionOpen, protocol.DecisionDeny} {
		b.Run(decision, func(b *testing.B) {
			f := setupEdge(b)
			ctx := context.Background()
			lot := f.lot()
			f.exec(`INSERT INTO webhook_endpoints (id, url, events, secret) VALUES ($1, 'http://127.0.0.1:1/', $2, 'whsec_x')`,
				uuid.NewString(), cloud.AlertTypes)
			if _, err := f.db.RecordGateStatus(ctx, lot, "g1", protocol.GateStatus{State: protocol.StateOnline, At: time.Now()}, true, time.Now()); err != nil {
				b.Fatal(err)
			}
			at := time.Now().Add(-time.Hour)
			b.ResetTimer()
			for range b.N {
				at = at.Add(100 * time.Millisecond)
				e := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "g1",
					Direction: protocol.DirectionEntry, Plate: "AB123C", Confidence: 0.9, Decision: decision,
					Reason: "no_reservation", OccurredAt: at, DecidedInUs: 40}
				if _, err := f.db.IngestGateEvent(ctx, e, cloud.Transition{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
