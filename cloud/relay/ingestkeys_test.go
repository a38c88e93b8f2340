package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
	dto "github.com/prometheus/client_model/go"
)

func badSignatures(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := ingestRejects.WithLabelValues("bad_signature").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestIngestRefusesForgedEvents (finding 14): on a broker without ACL anyone
// can publish on a gate's topic. An unsigned event, one signed by a key the
// lot never registered, and a signed one altered on the way move no
// CONFIRMED reservation; each is counted and dropped. The lot's own edge's
// event moves it, and so does one signed by a key registered after the
// ingest had read the lot's keys.
func TestIngestRefusesForgedEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 0)
	run := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("forger"), true, nil)
	before := badSignatures(t)

	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "forger")
	forgerKey := ed25519.NewKeyFromSeed(seed)
	unsigned := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, res)
	wrongKey := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, res)
	wrongKey.Sign(forgerKey)
	altered := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionDeny, res)
	altered.Sign(edgeKey)
	altered.Decision, altered.Reason = protocol.DecisionOpen, protocol.ReasonValid
	for _, e := range []protocol.GateEvent{unsigned, wrongKey, altered} {
		b, _ := json.Marshal(e)
		publishRaw(t, pub, protocol.GateEventsTopic(lot, e.GateID), b, false)
	}
	for _, e := range []protocol.GateEvent{unsigned, wrongKey, altered} {
		run.waitOutcome(e.EventID, "rejected")
		if got := run.find(e.EventID)[0].reason; got != "bad_signature" {
			t.Errorf("event %s: reason %q, want bad_signature", e.EventID, got)
		}
	}
	if got := f.status(res); got != protocol.StatusConfirmed {
		t.Fatalf("a forged event moved the reservation to %s", got)
	}
	if n := f.queryInt(`SELECT count(*) FROM gate_events WHERE lot_id = $1`, lot); n != 0 {
		t.Fatalf("%d forged events stored", n)
	}
	if got := badSignatures(t) - before; got < 3 {
		t.Errorf("bad_signature rejects rose by %v, want at least 3", got)
	}

	// The forger's key becomes a key of the lot (a second agent): its
	// next event is applied at once, though the ingest has the lot's keys
	// cached without it.
	if _, err := f.db.RegisterEdgeKey(context.Background(), lot, forgerKey.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	second := gateEvent(lot, "entry-2", protocol.DirectionEntry, protocol.DecisionOpen, res)
	second.Sign(forgerKey)
	b, _ := json.Marshal(second)
	publishRaw(t, pub, protocol.GateEventsTopic(lot, second.GateID), b, false)
	run.waitOutcome(second.EventID, "stored")
	if got := f.status(res); got != protocol.StatusCheckedIn {
		t.Fatalf("signed event: status %s, want CHECKED_IN", got)
	}
	exit := gateEvent(lot, "exit-1", protocol.DirectionExit, protocol.DecisionOpen, res)
	publishEvent(t, pub, exit) // the lot's first key still counts
	run.waitOutcome(exit.EventID, "stored")
	if got := f.status(res); got != protocol.StatusCompleted {
		t.Fatalf("exit: status %s, want COMPLETED", got)
	}
}

// TestKeyCacheReloads: a miss reads the keys again only when no read began
// after the event arrived, so a flood of forgeries costs one read, not one
// each; a lot that does not exist leaves no entry.
func TestKeyCacheReloads(t *testing.T) {
	t.Parallel()
	f := setup(t)
	lot := f.lot()
	counting := &countingKeys{IngestStore: f.db}
	c := newKeyCache(counting, time.Minute)
	ctx := context.Background()

	good := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionDeny, "")
	good.Sign(edgeKey)
	if err := c.verify(ctx, lot, &good, time.Now()); err != nil {
		t.Fatal(err)
	}
	forged := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, "")
	arrived := time.Now()
	for range 10 {
		if err := c.verify(ctx, lot, &forged, arrived); err != protocol.ErrBadSignature {
			t.Fatalf("forged: %v", err)
		}
	}
	if counting.n != 2 { // the first event's read, and one for the forgeries
		t.Errorf("%d reads, want 2", counting.n)
	}
	if err := c.verify(ctx, lot, &good, time.Now()); err != nil || counting.n != 2 {
		t.Errorf("cached verify: %v, %d reads", err, counting.n)
	}
	unknown := uuid.NewString()
	if err := c.verify(ctx, unknown, &good, time.Now()); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
	if _, ok := c.lots[unknown]; ok {
		t.Error("an entry kept for an unknown lot")
	}
}

type countingKeys struct {
	IngestStore
	n int
}

func (c *countingKeys) EdgeKeys(ctx context.Context, lot string) ([]ed25519.PublicKey, error) {
	c.n++
	return c.IngestStore.EdgeKeys(ctx, lot)
}
