package scenario_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/scenario"
)

// TestFaultTable: requests inside a fault's window are counted, errors are
// no answer or 5xx, a decision whose event never reached the cloud and a
// paid driver neither let in nor refunded are lost, and recovery runs to
// the last error.
func TestFaultTable(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	run := &sim.Run{
		Faults: []sim.Fault{{Kind: "pg_restart", At: at(10), Until: at(12), Detail: "ok"}},
		Journeys: []sim.Journey{
			{Driver: 1, ReservationID: "r1", Plan: sim.Plan{Arrival: sim.ArrivalOnTime}, PaidAt: at(14),
				Holds: []sim.HoldAttempt{{At: at(10.5), Status: 503, Code: "unavailable"}, {At: at(13.5), Latency: time.Second, Status: 0}, {At: at(14), Status: 201}}},
			{Driver: 2, ReservationID: "r2", Holds: []sim.HoldAttempt{{At: at(5), Status: 503}}}, // before the fault
			{Driver: 3, ReservationID: "r3", Holds: []sim.HoldAttempt{{At: at(11), Status: 409}}},
		},
		Reservations: []sim.Reservation{{ID: "r1"}, {ID: "r2"}, {ID: "r3"}},
		Reads: []sim.Read{
			{SentAt: at(11), Decision: "open", EventID: "e1"},
			{SentAt: at(11.5), Decision: "deny", EventID: "e2"}, // never reached the cloud
			{SentAt: at(12), Err: "camera missed"},              // not a request
			{SentAt: at(16), Err: "connection refused"},         // after the window
		},
		GateEvents: []sim.GateEvent{{EventID: "e1"}},
	}
	rows := scenario.FaultTable(run)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	if r.Requests != 6 || r.Errors != 2 || r.Lost != 2 || r.Recover != 4500*time.Millisecond {
		t.Fatalf("row %+v; want 6 requests, 2 errors, 2 lost, recovered after 4.5s", r)
	}
	md := scenario.FaultMarkdown(rows, nil)
	for _, want := range []string{"| `pg_restart` | 1 | 6 | 2 | 2 | 4.5s |", "driver 1 paid", "1× hold 503 unavailable", "1× hold no answer"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
