package edge_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

var (
	t0     = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) // reservation start
	t1     = t0.Add(2 * time.Hour)                          // reservation end
	policy = edge.Policy{EarlyGrace: 15 * time.Minute, ExitGrace: 10 * time.Minute, MinConfidence: 0.8, Pulse: time.Second}
)

func res(id, plate string, start, end time.Time) edge.Reservation {
	return edge.Reservation{ID: id, Plate: plate, StartsAt: start, EndsAt: end, Status: protocol.StatusConfirmed}
}

func state(plate string, rs ...edge.Reservation) edge.PlateState {
	return edge.PlateState{Plate: plate, Reservations: rs}
}

func inside(ps edge.PlateState, resID string, endsAt time.Time) edge.PlateState {
	ps.Presence = &edge.Presence{Plate: ps.Plate, ReservationID: resID, EnteredAt: t0, EndsAt: endsAt}
	return ps
}

func view(exact edge.PlateState, candidates ...edge.PlateState) edge.View {
	return edge.View{Exact: exact, Candidates: candidates}
}

func TestDecide(t *testing.T) {
	entry := func(plate string, conf float64) edge.PlateRead {
		return edge.PlateRead{GateID: "entry-1", Direction: protocol.DirectionEntry, Plate: plate, Confidence: conf}
	}
	exit := func(plate string, conf float64) edge.PlateRead {
		return edge.PlateRead{GateID: "exit-1", Direction: protocol.DirectionExit, Plate: plate, Confidence: conf}
	}
	ab := state("AB123C", res("r1", "AB123C", t0, t1))
	opensAt := t0.Add(-policy.EarlyGrace)

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
		overstay int
		presence edge.PresenceOp
	}{
		// Entry window [starts_at - early grace, ends_at).
		{name: "EntryWithinWindow", read: entry("AB123C", 0.95), view: view(ab), now: t0.Add(time.Hour),
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceEnter},
		{name: "EntryExactlyAtEarlyGrace", read: entry("AB123C", 0.95), view: view(ab), now: opensAt,
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceEnter},
		{name: "EntryOneNanosecondBeforeEarlyGrace", read: entry("AB123C", 0.95), view: view(ab), now: opensAt.Add(-1),
			decision: "deny", reason: protocol.ReasonTooEarly, resID: "r1", plate: "AB123C"},
		{name: "EntryLastNanosecond", read: entry("AB123C", 0.95), view: view(ab), now: t1.Add(-1),
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceEnter},
		{name: "EntryAtEndsAtIsExpired", read: entry("AB123C", 0.95), view: view(ab), now: t1,
			decision: "deny", reason: protocol.ReasonExpired, resID: "r1", plate: "AB123C"},
		{name: "EntryNoReservation", read: entry("ZZ999", 0.95), view: view(state("ZZ999")), now: t0,
			decision: "deny", reason: protocol.ReasonNoReservation, plate: "ZZ999"},
		{name: "EntryLowConfidence", read: entry("AB123C", 0.79), view: view(ab), now: t0,
			decision: "deny", reason: protocol.ReasonLowConfidence, plate: "AB123C"},
		{name: "EntryConfidenceAtThresholdOpens", read: entry("AB123C", 0.8), view: view(ab), now: t0,
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceEnter},
		{name: "EntryAlreadyInside", read: entry("AB123C", 0.95), view: view(inside(ab, "r1", t1)), now: t0.Add(time.Hour),
			decision: "deny", reason: protocol.ReasonAlreadyInside, resID: "r1", plate: "AB123C"},
		{name: "EntryPicksCoveringOfSeveral", read: entry("AB123C", 0.95),
			view: view(state("AB123C", res("old", "AB123C", t0.Add(-48*time.Hour), t0.Add(-46*time.Hour)),
				res("r1", "AB123C", t0, t1), res("next", "AB123C", t1.Add(24*time.Hour), t1.Add(26*time.Hour)))),
			now: t0, decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceEnter},
		{name: "EntryEarlyForNextAfterExpired", read: entry("AB123C", 0.95),
			view: view(state("AB123C", res("old", "AB123C", t0.Add(-48*time.Hour), t0.Add(-46*time.Hour)),
				res("next", "AB123C", t1.Add(24*time.Hour), t1.Add(26*time.Hour)))),
			now: t0, decision: "deny", reason: protocol.ReasonTooEarly, resID: "next", plate: "AB123C"},
		{name: "EntryLatestExpired", read: entry("AB123C", 0.95),
			view: view(state("AB123C", res("old", "AB123C", t0.Add(-48*time.Hour), t0.Add(-46*time.Hour)),
				res("newer", "AB123C", t0.Add(-4*time.Hour), t0.Add(-3*time.Hour)))),
			now: t0, decision: "deny", reason: protocol.ReasonExpired, resID: "newer", plate: "AB123C"},

		// Fuzzy reads at entry.
		{name: "FuzzyLookalikeOneCandidateOpens", read: entry("A8123C", 0.9), view: view(state("A8123C"), ab), now: t0,
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", fuzzy: true, presence: edge.PresenceEnter},
		{name: "FuzzyMissingLastCharOneCandidateOpens", read: entry("AB123", 0.9), view: view(state("AB123"), ab), now: t0,
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", fuzzy: true, presence: edge.PresenceEnter},
		{name: "FuzzyTwoPlatesAmbiguous", read: entry("AB1230", 0.95),
			view: view(state("AB1230"), state("AB123O", res("o", "AB123O", t0, t1)), state("AB123D", res("d", "AB123D", t0, t1))),
			now:  t0, decision: "deny", reason: protocol.ReasonAmbiguous, plate: "AB1230", fuzzy: true},
		{name: "FuzzyTwoPlatesAmbiguousEvenIfOnlyOneCovers", read: entry("AB1230", 0.95),
			view: view(state("AB1230"), state("AB123O", res("o", "AB123O", t0, t1)),
				state("AB123D", res("d", "AB123D", t1.Add(48*time.Hour), t1.Add(50*time.Hour)))),
			now: t0, decision: "deny", reason: protocol.ReasonAmbiguous, plate: "AB1230", fuzzy: true},
		{name: "ExactWinsOverLookalike", read: entry("AB123C", 0.95),
			view: view(ab, state("A8123C", res("other", "A8123C", t0, t1))), now: t0,
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceEnter},
		{name: "ExactTooEarlyIsNotRescuedByLookalike", read: entry("AB123C", 0.95),
			view: view(state("AB123C", res("later", "AB123C", t1.Add(24*time.Hour), t1.Add(25*time.Hour))),
				state("A8123C", res("other", "A8123C", t0, t1))), now: t0,
			decision: "deny", reason: protocol.ReasonTooEarly, resID: "later", plate: "AB123C"},
		{name: "FuzzyCandidateInsideIsAlreadyInside", read: entry("A8123C", 0.95), view: view(state("A8123C"), inside(ab, "r1", t1)),
			now: t0, decision: "deny", reason: protocol.ReasonAlreadyInside, resID: "r1", plate: "AB123C", fuzzy: true},
		{name: "FuzzyCandidateExpired", read: entry("A8123C", 0.95), view: view(state("A8123C"), ab), now: t1.Add(time.Minute),
			decision: "deny", reason: protocol.ReasonExpired, resID: "r1", plate: "AB123C", fuzzy: true},

		// Exit never traps a car.
		{name: "ExitInsideOnTime", read: exit("AB123C", 0.95), view: view(inside(ab, "r1", t1)), now: t1.Add(-time.Minute),
			decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C", presence: edge.PresenceLeave},
		{name: "ExitInsideWithinExitGraceNoOverstay", read: exit("AB123C", 0.95), view: view(inside(ab, "r1", t1)),
			now: t1.Add(policy.ExitGrace), decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C", presence: edge.PresenceLeave},
		{name: "ExitInsideOverstay", read: exit("AB123C", 0.95), view: view(inside(ab, "r1", t1)),
			now: t1.Add(42*time.Minute + time.Second), decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C",
			overstay: 43, presence: edge.PresenceLeave},
		{name: "ExitInsideAfterReservationDeleted", read: exit("AB123C", 0.95), view: view(inside(state("AB123C"), "r1", t1)),
			now: t1.Add(time.Hour), decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C",
			overstay: 60, presence: edge.PresenceLeave},
		{name: "ExitInsideLowConfidenceStillOpens", read: exit("AB123C", 0.3), view: view(inside(ab, "r1", t1)), now: t0,
			decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C", presence: edge.PresenceLeave},
		{name: "ExitNotInsideButCoveredOpens", read: exit("AB123C", 0.95), view: view(ab), now: t0.Add(time.Hour),
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceLeave},
		{name: "ExitNotInsideCoveredUntilExitGrace", read: exit("AB123C", 0.95), view: view(ab), now: t1.Add(policy.ExitGrace - 1),
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceLeave},
		{name: "ExitNotInside", read: exit("AB123C", 0.95), view: view(ab), now: t1.Add(policy.ExitGrace),
			decision: "deny", reason: protocol.ReasonNotInside, resID: "r1", plate: "AB123C"},
		{name: "ExitNotInsideCheckedInOpensWithOverstay", read: exit("AB123C", 0.95),
			view: view(state("AB123C", edge.Reservation{ID: "r1", Plate: "AB123C", StartsAt: t0, EndsAt: t1, Status: protocol.StatusCheckedIn})),
			now:  t1.Add(time.Hour), decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C",
			overstay: 60, presence: edge.PresenceLeave},
		{name: "ExitUnknownPlate", read: exit("ZZ999", 0.95), view: view(state("ZZ999")), now: t0,
			decision: "deny", reason: protocol.ReasonNoReservation, plate: "ZZ999"},
		{name: "ExitUnknownLowConfidence", read: exit("ZZ999", 0.2), view: view(state("ZZ999")), now: t0,
			decision: "deny", reason: protocol.ReasonLowConfidence, plate: "ZZ999"},
		{name: "ExitKnownNotCoveredLowConfidence", read: exit("AB123C", 0.2), view: view(ab), now: t1.Add(time.Hour),
			decision: "deny", reason: protocol.ReasonLowConfidence, plate: "AB123C"},
		{name: "ExitCoveredLowConfidenceOpens", read: exit("AB123C", 0.2), view: view(ab), now: t0,
			decision: "open", reason: protocol.ReasonValid, resID: "r1", plate: "AB123C", presence: edge.PresenceLeave},
		{name: "ExitFuzzyOneInsideOfTwoOpens", read: exit("AB1230", 0.95),
			view: view(state("AB1230"), inside(state("AB123O", res("o", "AB123O", t0, t1)), "o", t1),
				state("AB123D", res("d", "AB123D", t0, t1))),
			now: t0.Add(time.Hour), decision: "open", reason: protocol.ReasonInside, resID: "o", plate: "AB123O", fuzzy: true,
			presence: edge.PresenceLeave},
		{name: "ExitFuzzyTwoInsideAmbiguous", read: exit("AB1230", 0.95),
			view: view(state("AB1230"), inside(state("AB123O", res("o", "AB123O", t0, t1)), "o", t1),
				inside(state("AB123D", res("d", "AB123D", t0, t1)), "d", t1)),
			now: t0.Add(time.Hour), decision: "deny", reason: protocol.ReasonAmbiguous, plate: "AB1230", fuzzy: true},
		{name: "ExitFuzzyNoneInsideTwoAmbiguous", read: exit("AB1230", 0.95),
			view: view(state("AB1230"), state("AB123O", res("o", "AB123O", t0, t1)), state("AB123D", res("d", "AB123D", t0, t1))),
			now:  t0.Add(time.Hour), decision: "deny", reason: protocol.ReasonAmbiguous, plate: "AB1230", fuzzy: true},
		{name: "ExitFuzzyMissingCharInside", read: exit("AB123", 0.9), view: view(state("AB123"), inside(ab, "r1", t1)),
			now: t0.Add(time.Hour), decision: "open", reason: protocol.ReasonInside, resID: "r1", plate: "AB123C", fuzzy: true,
			presence: edge.PresenceLeave},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := edge.Decide(tt.read, tt.view, tt.now, policy)
			if d.Decision != tt.decision || d.Reason != tt.reason || d.ReservationID != tt.resID || d.Plate != tt.plate ||
				d.Fuzzy != tt.fuzzy || d.OverstayMinutes != tt.overstay || d.Presence != tt.presence {
				t.Fatalf("Decide = %+v\nwant decision=%s reason=%s res=%s plate=%s fuzzy=%v overstay=%d presence=%v",
					d, tt.decision, tt.reason, tt.resID, tt.plate, tt.fuzzy, tt.overstay, tt.presence)
			}
			if d.Presence == edge.PresenceEnter {
				if d.Entered == nil || d.Entered.Plate != tt.plate || d.Entered.ReservationID != tt.resID || !d.Entered.EnteredAt.Equal(tt.now) {
					t.Fatalf("Entered = %+v", d.Entered)
				}
			}
		})
	}
}

// TestDecideStaleRead is finding 11: a read captured hours ago, or stamped in
// the future, opened the barrier. Both bounds are inclusive; the policy's
// MaxReadAge applies, zero meaning the 10 s default; a missing captured_at is
// taken as now.
func TestDecideStaleRead(t *testing.T) {
	ab := state("AB123C", res("r1", "AB123C", t0, t1))
	now := t0.Add(time.Hour)
	long := policy
	long.MaxReadAge = time.Minute
	read := func(dir string, capturedAt time.Time) edge.PlateRead {
		return edge.PlateRead{GateID: "g", Direction: dir, Plate: "AB123C", Confidence: 0.95, CapturedAt: capturedAt}
	}
	tests := []struct {
		name       string
		dir        string
		capturedAt time.Time
		p          edge.Policy
		reason     string
	}{
		{"Fresh", protocol.DirectionEntry, now.Add(-time.Second), policy, protocol.ReasonValid},
		{"NoCapturedAtIsNow", protocol.DirectionEntry, time.Time{}, policy, protocol.ReasonValid},
		{"ExactlyDefaultAge", protocol.DirectionEntry, now.Add(-edge.DefaultMaxReadAge), policy, protocol.ReasonValid},
		{"JustOverDefaultAge", protocol.DirectionEntry, now.Add(-edge.DefaultMaxReadAge - 1), policy, edge.ReasonStaleRead},
		{"ThreeHoursOld", protocol.DirectionEntry, now.Add(-3 * time.Hour), policy, edge.ReasonStaleRead},
		{"Year2099", protocol.DirectionEntry, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), policy, edge.ReasonStaleRead},
		{"ExactlyMaxAhead", protocol.DirectionEntry, now.Add(edge.MaxReadAhead), policy, protocol.ReasonValid},
		{"JustOverMaxAhead", protocol.DirectionEntry, now.Add(edge.MaxReadAhead + 1), policy, edge.ReasonStaleRead},
		{"PolicyAgeLonger", protocol.DirectionEntry, now.Add(-30 * time.Second), long, protocol.ReasonValid},
		{"PolicyAgeExceeded", protocol.DirectionEntry, now.Add(-time.Minute - 1), long, edge.ReasonStaleRead},
		{"ExitStaleToo", protocol.DirectionExit, now.Add(-time.Hour), policy, edge.ReasonStaleRead},
		{"ExitFresh", protocol.DirectionExit, now, policy, protocol.ReasonValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := edge.Decide(read(tt.dir, tt.capturedAt), view(ab), now, tt.p)
			if d.Reason != tt.reason {
				t.Fatalf("Decide = %+v, want reason %s", d, tt.reason)
			}
			if tt.reason == edge.ReasonStaleRead && (d.Open() || d.Presence != edge.PresenceKeep || d.Plate != "AB123C") {
				t.Fatalf("stale read decided %+v: want a deny that changes no presence", d)
			}
		})
	}
}

func TestParseGates(t *testing.T) {
	gates, err := edge.ParseGates(" entry-1=entry, exit-1=exit ")
	if err != nil || len(gates) != 2 || gates[0] != (edge.Gate{ID: "entry-1", Direction: "entry"}) || gates[1].Direction != "exit" {
		t.Fatalf("ParseGates = %v, %v", gates, err)
	}
	for _, bad := range []string{"", "entry-1", "a=sideways", "a/b=entry", "a=entry,a=exit"} {
		if _, err := edge.ParseGates(bad); err == nil {
			t.Errorf("ParseGates(%q) accepted", bad)
		}
	}
}
