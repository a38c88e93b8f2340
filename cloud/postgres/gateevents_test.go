package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

func TestIngestGateEvent(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()
	res := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 0)
	checkIn := cloud.Transition{From: []cloud.Status{cloud.StatusConfirmed}, To: cloud.StatusCheckedIn}
	event := func(lot, res string) *protocol.GateEvent {
		return &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "g1",
			Direction: protocol.DirectionEntry, Plate: "AB123C", Confidence: 0.9, Decision: protocol.DecisionOpen,
			Reason: "reservation", ReservationID: res, OccurredAt: time.Now(), DecidedInUs: 40}
	}

	// Another lot's edge reporting this lot's reservation moves nothing.
	stray := event(other, res)
	if out, err := f.db.IngestGateEvent(ctx, stray, checkIn); err != nil || out.Duplicate || out.Moved != "" {
		t.Fatalf("event of another lot: %+v, %v", out, err)
	}

	e := event(lot, res)
	out, err := f.db.IngestGateEvent(ctx, e, checkIn)
	if err != nil || out.Duplicate || out.Moved != cloud.StatusCheckedIn || out.Seq != 1 {
		t.Fatalf("first delivery: %+v, %v", out, err)
	}
	if st := f.queryString(`SELECT status FROM reservations WHERE id = $1`, res); protocol.Status(st) != protocol.StatusCheckedIn {
		t.Fatalf("status %s after the entry", st)
	}
	if kind := f.queryString(`SELECT kind FROM gate_events WHERE event_id = $1`, e.EventID); kind != protocol.KindDecision {
		t.Errorf("stored kind %q, want the default %q", kind, protocol.KindDecision)
	}
	out, err = f.db.IngestGateEvent(ctx, e, checkIn)
	if err != nil || !out.Duplicate || out.Moved != "" {
		t.Fatalf("redelivery: %+v, %v", out, err)
	}
	if n := f.queryInt(`SELECT count(*) FROM outbox WHERE lot_id = $1`, lot); n != 1 {
		t.Fatalf("%d changes after a redelivery, want 1", n)
	}

	if _, err := f.db.IngestGateEvent(ctx, event(uuid.NewString(), ""), cloud.Transition{}); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
}

func TestRecordGateStatus(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	now := time.Now().Truncate(time.Millisecond)

	record := func(state string, seq int64, at time.Time) {
		t.Helper()
		if err := f.db.RecordGateStatus(ctx, lot, "g1", protocol.GateStatus{State: state, SyncSeq: seq, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	record(protocol.StateOnline, 7, now)
	record(protocol.StateOffline, 0, now.Add(-time.Second)) // older: ignored
	if st := f.queryString(`SELECT state || ' ' || coalesce(sync_seq::text, 'null') FROM gate_status WHERE lot_id = $1`, lot); st != "online 7" {
		t.Fatalf("after an older status: %q", st)
	}
	record(protocol.StateOffline, 0, now.Add(time.Second))
	if st := f.queryString(`SELECT state || ' ' || coalesce(sync_seq::text, 'null') FROM gate_status WHERE lot_id = $1`, lot); st != "offline null" {
		t.Fatalf("after a newer status: %q", st)
	}

	err := f.db.RecordGateStatus(ctx, uuid.NewString(), "g1", protocol.GateStatus{State: protocol.StateOnline, At: now})
	if cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
}
