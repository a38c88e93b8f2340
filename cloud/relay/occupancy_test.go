package relay

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// TestIngestOccupancy: the lot's occupancy follows the entries and exits
// its edges publish, through the broker and the ingest, each counted once
// however often the broker delivers it; a forged event counts nothing.
func TestIngestOccupancy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 0)
	run := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)
	inside := func() int {
		t.Helper()
		o, err := f.db.Occupancy(context.Background(), lot)
		if err != nil {
			t.Fatal(err)
		}
		return o.Inside
	}

	entry := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, res)
	for range 3 {
		publishEvent(t, pub, entry)
	}
	eventually(t, 15*time.Second, "three deliveries", func() bool { return len(run.find(entry.EventID)) == 3 })
	if n := inside(); n != 1 {
		t.Fatalf("after an entry delivered three times: %d inside", n)
	}
	denied := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionDeny, "")
	denied.Plate = "ZZ999"
	publishEvent(t, pub, denied)
	run.waitOutcome(denied.EventID, "stored")
	// Forged: signed by no key of the lot.
	forged := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, "")
	forged.Plate = "FAKE1"
	forged.Sign(f.key)
	raw, _ := protocol.Encode(forged)
	publishRaw(t, pub, protocol.GateEventsTopic(lot, "entry-1"), raw, false)
	run.waitOutcome(forged.EventID, "rejected")
	if n := inside(); n != 1 {
		t.Fatalf("after a denial and a forged entry: %d inside", n)
	}

	exit := gateEvent(lot, "exit-1", protocol.DirectionExit, protocol.DecisionOpen, res)
	publishEvent(t, pub, exit)
	run.waitOutcome(exit.EventID, "stored")
	if n := inside(); n != 0 {
		t.Fatalf("after the exit: %d inside", n)
	}
}
