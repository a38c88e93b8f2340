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
	gs, err := f.db.AllGateEvents(ctx)
	if err != nil || len(gs) != 1 || gs[0].EventID != e.EventID || gs[0].ReservationID != res || gs[0].Kind != protocol.KindDecision {
		t.Errorf("gate events: %+v, %v", gs, err)
	}
	ids, err := f.db.GateEventIDs(ctx)
	if err != nil || len(ids) != 1 || !ids[e.EventID] {
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
