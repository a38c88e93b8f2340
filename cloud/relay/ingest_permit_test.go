package relay

import (
	"testing"

	"github.com/parkgate/parkgate/protocol"
)

// TestIngestPermitEvents: an edge's opens on a permit (reason permit, no
// reservation id) are stored like any event and move nothing: no
// reservation, no change-log row.
func TestIngestPermitEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	run := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)

	in := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, "")
	out := gateEvent(lot, "exit-1", protocol.DirectionExit, protocol.DecisionOpen, "")
	in.Reason, out.Reason = protocol.ReasonPermit, protocol.ReasonPermit
	for _, e := range []protocol.GateEvent{in, out} {
		publishEvent(t, pub, e)
	}
	for _, e := range []protocol.GateEvent{in, out} {
		run.waitOutcome(e.EventID, "stored")
	}
	if n := f.queryInt(`SELECT count(*) FROM gate_events WHERE lot_id = $1 AND reason = 'permit' AND reservation_id IS NULL`, lot); n != 2 {
		t.Errorf("%d permit events stored without a reservation, want 2", n)
	}
	if n := f.queryInt(`SELECT count(*) FROM outbox WHERE lot_id = $1`, lot); n != 0 {
		t.Errorf("permit events wrote %d change-log rows", n)
	}
}
