package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusPending, "AB123C", 0)
	f.exec(`SELECT * FROM parkgate_change($1, '{PENDING}', 'CONFIRMED')`, res)
	e := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "g1",
		Direction: protocol.DirectionEntry, Plate: "AB123C", Confidence: 0.9, Decision: protocol.DecisionOpen,
		Reason: "reservation", ReservationID: res, OccurredAt: time.Now(), DecidedInUs: 40}
	if _, err := f.db.IngestGateEvent(ctx, e,
		cloud.Transition{From: []cloud.Status{cloud.StatusConfirmed}, To: cloud.StatusCheckedIn}); err != nil {
		t.Fatal(err)
	}

	rs, err := f.db.AllReservations(ctx)
	if err != nil || len(rs) != 1 || rs[0].ID != res || rs[0].LotID != lot || rs[0].Status != protocol.StatusCheckedIn ||
		rs[0].Plate != "AB123C" || rs[0].SpotID == 0 {
		t.Errorf("reservations: %+v, %v", rs, err)
	}
	cs, err := f.db.AllChanges(ctx)
	if err != nil || len(cs) != 2 || cs[0].Seq != 1 || cs[1].Status != protocol.StatusCheckedIn || cs[1].ReservationID != res {
		t.Errorf("changes: %+v, %v", cs, err)
	}
	// A remote open carries the operator's reason as its note, which the
	// audit shows; a plate decision has none.
	open := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "g1",
		Direction: protocol.DirectionEntry, Decision: protocol.DecisionOpen, Reason: protocol.ReasonManualOverride,
		OccurredAt: e.OccurredAt.Add(time.Second), Note: "barrier stuck; driver at the intercom"}
	if _, err := f.db.IngestGateEvent(ctx, open, cloud.Transition{}); err != nil {
		t.Fatal(err)
	}
	gs, err := f.db.AllGateEvents(ctx)
	if err != nil || len(gs) != 2 || gs[0].EventID != e.EventID || gs[0].ReservationID != res || gs[0].Kind != protocol.KindDecision ||
		gs[0].Note != "" {
		t.Errorf("gate events: %+v, %v", gs, err)
	}
	if len(gs) == 2 && (gs[1].EventID != open.EventID || gs[1].Reason != protocol.ReasonManualOverride || gs[1].Note != open.Note) {
		t.Errorf("remote open in the audit: %+v; want its note %q", gs[1], open.Note)
	}
	ids, err := f.db.GateEventIDs(ctx)
	if err != nil || len(ids) != 2 || !ids[e.EventID] {
		t.Errorf("gate event ids: %v, %v", ids, err)
	}
	seqs, err := f.db.LotSeqs(ctx)
	if err != nil || seqs[lot] != 2 {
		t.Errorf("lot seqs: %v, %v", seqs, err)
	}
	if st, err := f.db.ReservationStatus(ctx, res); err != nil || st != protocol.StatusCheckedIn {
		t.Errorf("status: %q, %v", st, err)
	}
	if st, err := f.db.ReservationStatus(ctx, uuid.NewString()); err != nil || st != "" {
		t.Errorf("status of no reservation: %q, %v", st, err)
	}
}

// TestAuditExtension: an extension is traceable in the audit: its own row
// names the booking it extends, and the change that merged it carries the
// booking's new window, after the one the booking had before.
func TestAuditExtension(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusPending, "EXT1A", 1)
	f.exec(`SELECT * FROM parkgate_change($1, '{PENDING}', 'CONFIRMED')`, res)
	r, err := f.db.Reservation(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	newEnd := r.EndsAt.Add(30 * time.Minute)
	ext := uuid.NewString()
	h, err := f.db.HoldExtension(ctx, cloud.ExtensionParams{ID: ext, ParentID: res, From: r.EndsAt, EndsAt: newEnd,
		HoldTTL: 10 * time.Minute, Price: cloud.Money{Amount: 150, Currency: "EUR"}, Key: "ext-" + ext,
		RequestHash: []byte("h"), Lease: time.Minute, Now: time.Now()})
	if err != nil || h.Outcome != cloud.ExtensionHeld {
		t.Fatalf("hold extension: %+v, %v", h, err)
	}
	if out, _, err := f.db.Extend(ctx, ext, "pi_ext", time.Now()); err != nil || out != "extended" {
		t.Fatalf("extend: %q, %v", out, err)
	}

	rs, err := f.db.AllReservations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for _, x := range rs {
		links[x.ID] = x.ExtendsID
	}
	if len(rs) != 2 || links[ext] != res || links[res] != "" {
		t.Errorf("extends ids: %v; want %s → %s and the booking itself none", links, ext, res)
	}
	cs, err := f.db.AllChanges(ctx)
	if err != nil || len(cs) != 2 {
		t.Fatalf("changes: %+v, %v", cs, err)
	}
	first, merged := cs[0], cs[1]
	if first.ReservationID != res || !first.EndsAt.Equal(r.EndsAt) || !first.StartsAt.Equal(r.StartsAt) || first.Op != "upsert" {
		t.Errorf("confirmation's change: %+v; want the booking's first window [%s, %s)", first, r.StartsAt, r.EndsAt)
	}
	if merged.ReservationID != res || !merged.EndsAt.Equal(newEnd) || merged.Status != protocol.StatusConfirmed || merged.Op != "upsert" {
		t.Errorf("merge's change: %+v; want the booking with ends_at %s", merged, newEnd)
	}
}
