package traffic_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/traffic"
)

func TestMatchBarriers(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	read := func(gate string, sent int, decision string) sim.Read {
		return sim.Read{LotID: "l", GateID: gate, SentAt: ms(sent), RTT: 5 * time.Millisecond, Decision: decision}
	}
	reads := []sim.Read{
		read("entry-1", 1000, "open"),
		read("entry-1", 400, "open"), // out of order in the ledger
		read("entry-1", 2000, "deny"),
		read("entry-1", 3000, "open"), // its edge never came
		read("exit-1", 500, "open"),
	}
	edges := map[string][]time.Time{
		"l/entry-1": {ms(100) /* stray, before any read */, ms(401), ms(1002), ms(3100) /* too late to be the answer */},
		"l/exit-1":  {ms(503)},
	}
	traffic.MatchBarriers(reads, edges)
	want := []time.Time{ms(1002), ms(401), {}, {}, ms(503)}
	for i, r := range reads {
		if !r.BarrierAt.Equal(want[i]) {
			t.Errorf("read %d (%s at %s): barrier %v, want %v", i, r.GateID, r.SentAt.Sub(t0), r.BarrierAt.Sub(t0), want[i].Sub(t0))
		}
	}
}
