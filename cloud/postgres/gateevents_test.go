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

// TestRecordGateStatus: statuses apply newest first by the edge's clock,
// except a live last will, whose at is the agent's connect time; only a
// change of state is a transition, and each transition raises one alert.
func TestRecordGateStatus(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	f.exec(`INSERT INTO webhook_endpoints (id, url, events, secret) VALUES ($1, 'http://127.0.0.1:1/', $2, 'whsec_x')`,
		uuid.NewString(), []string{cloud.AlertEdgeOffline, cloud.AlertEdgeOnline})
	t0 := time.Now().Truncate(time.Millisecond) // the agent connects: its will says offline at t0

	// recv is when the cloud received each message: in order, except where
	// a handler that ran late is modelled.
	recv := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	steps := []struct {
		name    string
		state   string
		seq     int64
		at      time.Time
		live    bool
		recv    time.Time
		moved   string
		stored  string // state and sync seq after the step
		alerted string // the newest alert's type, "" for none yet
	}{
		{"FirstOnline", protocol.StateOnline, 7, t0.Add(time.Second), true, recv(1), "", "online 7", ""},
		{"RepeatedOnline", protocol.StateOnline, 7, t0.Add(time.Second), true, recv(2), "", "online 7", ""},
		{"RetainedReplayOfOlderOffline", protocol.StateOffline, 0, t0, false, recv(3), "", "online 7", ""},
		{"NewerOnline", protocol.StateOnline, 9, t0.Add(2 * time.Second), true, recv(4), "", "online 9", ""},
		{"LastWill", protocol.StateOffline, 0, t0, true, recv(5), protocol.StateOffline, "offline 9", cloud.AlertEdgeOffline},
		{"LateCopyOfOnline", protocol.StateOnline, 9, t0.Add(2 * time.Second), true, recv(6), "", "offline 9", cloud.AlertEdgeOffline},
		{"WillAgain", protocol.StateOffline, 0, t0, true, recv(7), "", "offline 9", cloud.AlertEdgeOffline},
		{"BackOnline", protocol.StateOnline, 12, t0.Add(time.Minute), true, recv(9), protocol.StateOnline, "online 12", cloud.AlertEdgeOnline},
		// The will of the connection before BackOnline's, received before
		// it but handled after it: the gate stays online.
		{"DeadConnectionsWillHandledLate", protocol.StateOffline, 0, t0, true, recv(8), "", "online 12", cloud.AlertEdgeOnline},
		{"RetainedReplayAtRestart", protocol.StateOnline, 12, t0.Add(time.Minute), false, recv(10), "", "online 12", cloud.AlertEdgeOnline},
		{"ShutdownOffline", protocol.StateOffline, 0, t0.Add(2 * time.Minute), false, recv(11), protocol.StateOffline, "offline 12", cloud.AlertEdgeOffline},
	}
	for _, st := range steps {
		moved, err := f.db.RecordGateStatus(ctx, lot, "g1", protocol.GateStatus{State: st.state, SyncSeq: st.seq, At: st.at}, st.live, st.recv)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if moved != st.moved {
			t.Errorf("%s: transition %q, want %q", st.name, moved, st.moved)
		}
		if got := f.queryString(`SELECT state || ' ' || coalesce(sync_seq::text, 'null') FROM gate_status WHERE lot_id = $1`, lot); got != st.stored {
			t.Errorf("%s: stored %q, want %q", st.name, got, st.stored)
		}
		if got := f.queryString(`SELECT coalesce((SELECT type FROM alert_events WHERE data->>'lot_id' = $1 ORDER BY created DESC, id LIMIT 1), '')`, lot); got != st.alerted {
			t.Errorf("%s: newest alert %q, want %q", st.name, got, st.alerted)
		}
	}
	if n := f.queryInt(`SELECT count(*) FROM alert_events WHERE data->>'lot_id' = $1`, lot); n != 3 {
		t.Errorf("%d alerts, want 3 (offline, online, offline)", n)
	}
	if n := f.queryInt(`SELECT count(*) FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.data->>'lot_id' = $1`, lot); n != 3 {
		t.Errorf("%d deliveries, want one per alert", n)
	}

	_, err := f.db.RecordGateStatus(ctx, uuid.NewString(), "g1", protocol.GateStatus{State: protocol.StateOnline, At: t0}, true, t0)
	if cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
}
