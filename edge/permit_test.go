package edge_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

func permit(id, plate string, from, until time.Time) edge.Permit {
	return edge.Permit{ID: id, Plate: plate, ValidFrom: from, ValidUntil: until}
}

func withPermits(ps edge.PlateState, pms ...edge.Permit) edge.PlateState {
	ps.Permits = append(ps.Permits, pms...)
	return ps
}

// TestDecidePermit: a plate with a permit valid now opens with reason
// permit and no reservation id, under the anti-passback of every plate; a
// reservation that opens goes first; exit never traps a permit holder.
func TestDecidePermit(t *testing.T) {
	t.Parallel()
	entry := func(plate string) edge.PlateRead {
		return edge.PlateRead{GateID: "entry-1", Direction: protocol.DirectionEntry, Plate: plate, Confidence: 0.95}
	}
	exit := func(plate string) edge.PlateRead {
		return edge.PlateRead{GateID: "exit-1", Direction: protocol.DirectionExit, Plate: plate, Confidence: 0.95}
	}
	from, until := t0.Add(-24*time.Hour), t0.Add(30*24*time.Hour)
	pm := withPermits(state("PM123"), permit("p1", "PM123", from, until))
	insideOnPermit := pm
	insideOnPermit.Presence = &edge.Presence{Plate: "PM123", PermitID: "p1", EnteredAt: t0}

	tests := []struct {
		name     string
		read     edge.PlateRead
		view     edge.View
		now      time.Time
		decision string
		reason   string
		resID    string
		plate    string
		fuzzy    bool
		presence edge.PresenceOp
	}{
		{name: "EntryWithinValidity", read: entry("PM123"), view: view(pm), now: t0,
			decision: "open", reason: protocol.ReasonPermit, plate: "PM123", presence: edge.PresenceEnter},
		{name: "EntryAtValidFrom", read: entry("PM123"), view: view(pm), now: from,
			decision: "open", reason: protocol.ReasonPermit, plate: "PM123", presence: edge.PresenceEnter},
		{name: "EntryBeforeValidFromNoEarlyGrace", read: entry("PM123"), view: view(pm), now: from.Add(-time.Minute),
			decision: "deny", reason: protocol.ReasonTooEarly, plate: "PM123"},
		{name: "EntryAtValidUntilIsExpired", read: entry("PM123"), view: view(pm), now: until,
			decision: "deny", reason: protocol.ReasonExpired, plate: "PM123"},
		{name: "EntryAlreadyInside", read: entry("PM123"), view: view(insideOnPermit), now: t0.Add(time.Hour),
			decision: "deny", reason: protocol.ReasonAlreadyInside, plate: "PM123"},
		{name: "EntryOneOfSeveralPermitsValid", read: entry("PM123"),
			view: view(withPermits(state("PM123"), permit("old", "PM123", from.Add(-72*time.Hour), from.Add(-48*time.Hour)),
				permit("p1", "PM123", from, until))),
			now: t0, decision: "open", reason: protocol.ReasonPermit, plate: "PM123", presence: edge.PresenceEnter},
		{name: "ReservationThatOpensGoesFirst", read: entry("PM123"),
			view: view(withPermits(state("PM123", res("r1", "PM123", t0, t1)), permit("p1", "PM123", from, until))),
			now:  t0, decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "PM123", presence: edge.PresenceEnter},
		{name: "PermitOpensWhenReservationIsAhead", read: entry("PM123"),
			view: view(withPermits(state("PM123", res("later", "PM123", t1.Add(24*time.Hour), t1.Add(25*time.Hour))),
				permit("p1", "PM123", from, until))),
			now: t0, decision: "open", reason: protocol.ReasonPermit, plate: "PM123", presence: edge.PresenceEnter},
		{name: "FuzzyReadOfPermitPlateOpens", read: entry("PM1Z3"), view: view(state("PM1Z3"), pm), now: t0,
			decision: "open", reason: protocol.ReasonPermit, plate: "PM123", fuzzy: true, presence: edge.PresenceEnter},
		{name: "ExitInsideOnPermit", read: exit("PM123"), view: view(insideOnPermit), now: t0.Add(time.Hour),
			decision: "open", reason: protocol.ReasonInside, plate: "PM123", presence: edge.PresenceLeave},
		{name: "ExitInsideAfterPermitEndedStillOpens", read: exit("PM123"),
			view: view(edge.PlateState{Plate: "PM123", Presence: insideOnPermit.Presence}), now: until.Add(48 * time.Hour),
			decision: "open", reason: protocol.ReasonInside, plate: "PM123", presence: edge.PresenceLeave},
		{name: "ExitNotInsideWithValidPermit", read: exit("PM123"), view: view(pm), now: t0,
			decision: "open", reason: protocol.ReasonPermit, plate: "PM123", presence: edge.PresenceLeave},
		{name: "ExitNotInsideWithinExitGraceOfPermitEnd", read: exit("PM123"), view: view(pm), now: until.Add(policy.ExitGrace - 1),
			decision: "open", reason: protocol.ReasonPermit, plate: "PM123", presence: edge.PresenceLeave},
		{name: "ExitNotInsidePermitLongOver", read: exit("PM123"), view: view(pm), now: until.Add(policy.ExitGrace),
			decision: "deny", reason: protocol.ReasonNotInside, plate: "PM123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := edge.Decide(tt.read, tt.view, tt.now, policy)
			if d.Decision != tt.decision || d.Reason != tt.reason || d.ReservationID != tt.resID || d.Plate != tt.plate ||
				d.Fuzzy != tt.fuzzy || d.Presence != tt.presence || d.OverstayMinutes != 0 {
				t.Fatalf("Decide = %+v\nwant decision=%s reason=%s res=%s plate=%s fuzzy=%v presence=%v",
					d, tt.decision, tt.reason, tt.resID, tt.plate, tt.fuzzy, tt.presence)
			}
			if d.Presence == edge.PresenceEnter && d.Reason == protocol.ReasonPermit {
				if d.Entered == nil || d.Entered.PermitID == "" || d.Entered.ReservationID != "" || !d.Entered.EndsAt.IsZero() {
					t.Fatalf("Entered = %+v, want the permit's id, no reservation, no end", d.Entered)
				}
			}
		})
	}
}

// TestDecideCodeIgnoresPermits: an access code stands for its own
// reservation only; a permit of the same plate does not make a code of a
// reservation the store lacks open.
func TestDecideCodeIgnoresPermits(t *testing.T) {
	t.Parallel()
	code := &protocol.AccessCode{ReservationID: "gone", LotID: "lot-1", Plate: "PM123", StartsAt: t0, EndsAt: t1}
	v := view(withPermits(state("PM123"), permit("p1", "PM123", t0.Add(-time.Hour), t1)))
	d := edge.DecideCode(edge.CodeRead{GateID: "entry-1", Direction: protocol.DirectionEntry, Code: code}, "lot-1", v, t0, policy)
	if d.Open() || d.Reason != protocol.ReasonNoReservation {
		t.Fatalf("code of a reservation the store lacks, plate with a permit: %+v, want deny no_reservation", d)
	}
}
