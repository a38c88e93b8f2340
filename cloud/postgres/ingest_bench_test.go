package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// BenchmarkIngestGateEvent: gate events stored as the ingest stores them,
// entries that open (the presence row and counter with them), from 8
// writers at once, all of one lot (its events take turns on the lot's
// counter row) or spread over 50 lots.
func BenchmarkIngestGateEvent(b *testing.B) {
	for _, lots := range []int{1, 50} {
		b.Run(fmt.Sprintf("Lots%d", lots), func(b *testing.B) {
			f := setupEdge(b)
			ids := make([]string, lots)
			for i := range ids {
				ids[i] = f.lot()
			}
			var n atomic.Int64
			b.SetParallelism(4) // 4 goroutines per core: 8 writers on this 2-core machine
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					e := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), Kind: protocol.KindDecision,
						LotID: ids[int(i)%lots], GateID: "entry-1", Direction: protocol.DirectionEntry,
						Plate: fmt.Sprintf("B%d", i), Confidence: 0.9, Decision: protocol.DecisionOpen, Reason: "valid",
						OccurredAt: time.Now(), DecidedInUs: 40}
					if _, err := f.db.IngestGateEvent(context.Background(), e, cloud.Transition{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
