package check_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
	"github.com/parkgate/parkgate/sim/internal/simtest"
)

func TestFixtureHolds(t *testing.T) {
	for _, r := range check.Evaluate(simtest.Run()) {
		if !r.Pass {
			t.Errorf("%s fails on the fixture: %v", r.Name, r.Violations)
		}
		if r.Checked == 0 {
			t.Errorf("%s checked nothing on the fixture", r.Name)
		}
	}
}

// Each case breaks one thing in an otherwise sound run; the named check
// must fail, mentioning want, and no other check may.
func TestChecksBite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		check string
		want  string
		// also are checks that rightly fail too: a lost refund also leaves
		// a paying driver neither in nor refunded.
		also   []string
		break_ func(run *sim.Run)
	}{
		{
			name: "ChangeLost", check: "changes_reached_edges", want: "applied changes up to 7",
			break_: func(run *sim.Run) {
				// The cloud committed changes 8 and 9 of lot A and never
				// published them.
				run.Edges[0].SyncSeq = 7
			},
		},
		{
			name: "OverlapNow", check: "no_overlap", want: "both active and overlap",
			break_: func(run *sim.Run) {
				// A database without the exclusion constraint let a second
				// booking of spot 1 overlap driver 4's.
				run.Reservations = append(run.Reservations, sim.Reservation{ID: "rx", LotID: simtest.LotA, SpotID: 1,
					Plate: "XXX999X", StartsAt: simtest.T0.Add(50 * time.Second), EndsAt: simtest.T0.Add(80 * time.Second),
					Status: protocol.StatusConfirmed})
			},
		},
		{
			name: "OverlapInHistory", check: "no_overlap", want: "while r0 was active",
			break_: func(run *sim.Run) {
				// A hold of spot 1 over driver 0's window while r0 was
				// checked in; it has since expired, so only the log shows it.
				run.Reservations = append(run.Reservations, sim.Reservation{ID: "ry", LotID: simtest.LotA, SpotID: 1,
					Plate: "YYY888Y", StartsAt: simtest.T0.Add(20 * time.Second), EndsAt: simtest.T0.Add(30 * time.Second),
					Status: protocol.StatusExpired})
				run.Changes = append(run.Changes,
					sim.Change{LotID: simtest.LotA, Seq: 10, ReservationID: "ry", Status: protocol.StatusPending},
					sim.Change{LotID: simtest.LotA, Seq: 11, ReservationID: "ry", Status: protocol.StatusExpired})
				// …and r0 completes only after it.
				for i := range run.Changes {
					if run.Changes[i].ReservationID == "r0" && run.Changes[i].Status == protocol.StatusCompleted {
						run.Changes[i].Seq = 12
					}
				}
			},
		},
		{
			name: "ForgedOpen", check: "no_entry_without_reservation", want: "which the cloud does not have",
			break_: func(run *sim.Run) {
				// An agent that accepted a forged reservation opened for a
				// car the cloud never booked.
				run.GateEvents = append(run.GateEvents, sim.GateEvent{EventID: "forged", LotID: simtest.LotA,
					GateID: "entry-1", Direction: protocol.DirectionEntry, Plate: "FRG001X", Decision: "open",
					Reason: protocol.ReasonValid, ReservationID: "not-a-reservation", OccurredAt: simtest.T0.Add(20 * time.Second),
					ReceivedAt: simtest.T0.Add(20 * time.Second)})
			},
		},
		{
			name: "RevokedPermitOpens", check: "revoked_permit_never_opens", want: "LLL222L let in on a permit",
			also: []string{"no_entry_without_reservation"},
			break_: func(run *sim.Run) {
				// An edge that ignored the revocation let driver 11 in.
				for i := range run.Reads {
					if run.Reads[i].EventID == "e11" {
						run.Reads[i].Decision, run.Reads[i].Reason = "open", protocol.ReasonPermit
					}
				}
				for i := range run.GateEvents {
					if run.GateEvents[i].EventID == "e11" {
						run.GateEvents[i].Decision, run.GateEvents[i].Reason = "open", protocol.ReasonPermit
					}
				}
			},
		},
		{
			name: "PermitHolderRefused", check: "permit_holders_admitted", want: "permit holder 10 (KKK111K) refused no_reservation",
			break_: func(run *sim.Run) {
				// An edge that lost the synced permit turned driver 10 away.
				for i := range run.Reads {
					if run.Reads[i].EventID == "e10" {
						run.Reads[i].Decision, run.Reads[i].Reason = "deny", protocol.ReasonNoReservation
					}
				}
				for i := range run.GateEvents {
					if run.GateEvents[i].EventID == "e10" {
						run.GateEvents[i].Decision, run.GateEvents[i].Reason = "deny", protocol.ReasonNoReservation
					}
				}
			},
		},
		{
			name: "ResetNeverArrived", check: "presence_reset_applied", want: "never reached the edge",
			break_: func(run *sim.Run) {
				for i := range run.Journeys {
					if p := run.Journeys[i].Permit; p != nil && p.Reset != nil {
						p.Reset.Synced, p.Reset.After = time.Time{}, ""
					}
				}
			},
		},
		{
			name: "PermitOpenWithoutPermit", check: "no_entry_without_reservation", want: "holds no valid permit",
			// The edge let driver 10 in before its permit began.
			break_: func(run *sim.Run) { run.Permits[0].ValidFrom = simtest.T0.Add(13 * time.Second) },
		},
		{
			name: "IntruderLetIn", check: "no_entry_without_reservation", want: "car DDD444D let in",
			break_: func(run *sim.Run) {
				// The intruder got in on driver 0's reservation (a fuzzy
				// match gone wrong).
				run.Reads[3].Decision, run.Reads[3].Reason, run.Reads[3].ReservationID = "open", protocol.ReasonValid, "r0"
				run.GateEvents[3].Decision, run.GateEvents[3].Reason, run.GateEvents[3].ReservationID = "open", protocol.ReasonValid, "r0"
				run.GateEvents[3].Plate = "AAA111A"
			},
		},
		{
			name: "RefundedLatePayerLetIn", check: "no_entry_without_reservation", want: "which is REFUNDED",
			break_: func(run *sim.Run) {
				run.Reads[2].Decision, run.Reads[2].Reason, run.Reads[2].ReservationID = "open", protocol.ReasonValid, "r1"
				run.GateEvents[2].Decision, run.GateEvents[2].Reason, run.GateEvents[2].ReservationID = "open", protocol.ReasonValid, "r1"
			},
		},
		{
			name: "EventLost", check: "events_reached_cloud", want: "is missing",
			break_: func(run *sim.Run) { run.GateEvents = append(run.GateEvents[:3:3], run.GateEvents[4:]...) },
		},
		{
			name: "EventChanged", check: "events_reached_cloud", want: "cloud has",
			break_: func(run *sim.Run) { run.GateEvents[3].Reason = protocol.ReasonTooEarly },
		},
		{
			name: "OutboxNotDrained", check: "events_reached_cloud", want: "outbox",
			break_: func(run *sim.Run) { run.Edges[1].OutboxDepth = 3 },
		},
		{
			name: "RefundTwice", check: "late_payment_refunded_once", want: "2 refunds, want exactly 1",
			also: []string{"refunds_in_policy"},
			break_: func(run *sim.Run) {
				run.Refunds = append(run.Refunds, sim.Refund{ID: "re_2", PaymentIntentID: "pi_1", Amount: 50})
			},
		},
		{
			name: "NoRefund", check: "late_payment_refunded_once", want: "0 refunds, want exactly 1",
			also: []string{"paid_entered_or_refunded"},
			break_: func(run *sim.Run) {
				run.Refunds = run.Refunds[1:] // re_1, the late payer's
				run.Reservations[1].Status = protocol.StatusExpired
			},
		},
		{
			name: "HonouredRefunded", check: "late_payment_refunded_once", want: "yet its payment was refunded",
			break_: func(run *sim.Run) {
				run.Refunds = append(run.Refunds, sim.Refund{ID: "re_3", PaymentIntentID: "pi_0", Amount: 50})
			},
		},
		{
			name: "LatePaymentConfirmed", check: "late_payment_refunded_once", want: "after the hold ended, yet the reservation is CONFIRMED",
			also: []string{"paid_entered_or_refunded"},
			break_: func(run *sim.Run) {
				// The cloud took a payment that came after the hold for a
				// confirmation: nothing refunded, the spot kept.
				run.Reservations[1].Status = protocol.StatusConfirmed
				run.Refunds = run.Refunds[1:] // re_1, the late payer's
			},
		},
		{
			name: "PaidRefusedAtGate", check: "paid_entered_or_refunded", want: "came within the window but was not let in",
			break_: func(run *sim.Run) {
				run.Reads[0].Decision, run.Reads[0].Reason, run.Reads[0].ReservationID = "deny", protocol.ReasonNoReservation, ""
				run.GateEvents[0].Decision, run.GateEvents[0].Reason, run.GateEvents[0].ReservationID = "deny", protocol.ReasonNoReservation, ""
				run.Reads = run.Reads[:1:1]
				run.Reads = append(run.Reads, simtest.Run().Reads[2:]...)
				run.GateEvents = append(run.GateEvents[:1:1], run.GateEvents[2:]...)
				run.Journeys[0].EnteredAt, run.Journeys[0].ExitedAt = time.Time{}, time.Time{}
			},
		},
		{
			name: "TwoLiveReservationsForOneKey", check: "idempotent_holds", want: "2 live reservations",
			break_: func(run *sim.Run) {
				run.Reservations = append(run.Reservations, sim.Reservation{ID: "r0b", LotID: simtest.LotB, SpotID: 3,
					Plate: "AAA111A", StartsAt: simtest.T0.Add(50 * time.Second), EndsAt: simtest.T0.Add(60 * time.Second),
					Status: protocol.StatusPending})
			},
		},
		{
			name: "RefundOutsidePolicy", check: "refunds_in_policy", want: "after the free cancellation ended, and was refunded",
			break_: func(run *sim.Run) {
				// Lot A's free cancellation is an hour: driver 6's cancel
				// was late, yet the cloud cancelled and refunded.
				run.Journeys[6].Cancel.Status, run.Journeys[6].Cancel.Code = 200, ""
				run.Reservations[5].Status = protocol.StatusCancelled
				run.Refunds = append(run.Refunds, sim.Refund{ID: "re_6", PaymentIntentID: "pi_6", Amount: 50})
			},
		},
		{
			name: "CancelRefusedInPolicy", check: "refunds_in_policy", want: "within the free cancellation was refused",
			also: []string{"paid_entered_or_refunded"},
			break_: func(run *sim.Run) {
				run.Journeys[5].Cancel.Status, run.Journeys[5].Cancel.Code = 409, "not_cancellable"
				run.Reservations[4].Status = protocol.StatusConfirmed
				run.Refunds = run.Refunds[:1]
			},
		},
		{
			name: "CancelRefundedTwice", check: "refunds_in_policy", want: "pi_5 was refunded 2 times",
			break_: func(run *sim.Run) {
				run.Refunds = append(run.Refunds, sim.Refund{ID: "re_5b", PaymentIntentID: "pi_5", Amount: 50})
			},
		},
		{
			name: "ExtensionOverlaps", check: "no_overlap", want: "while r7 was active",
			// …and its car, leaving in the bought time, looks late to it.
			also: []string{"overstay_priced_once"},
			break_: func(run *sim.Run) {
				// The extension r7x was sold and merged, but the booking's
				// own row kept its first end, and the spot was sold again
				// inside the bought time: only the extended window shows it.
				run.Reservations[6].EndsAt = simtest.T0.Add(50 * time.Second)
				run.Reservations = append(run.Reservations, sim.Reservation{ID: "rz", LotID: simtest.LotB, SpotID: 3,
					Plate: "ZZZ111Z", StartsAt: simtest.T0.Add(52 * time.Second), EndsAt: simtest.T0.Add(60 * time.Second),
					Status: protocol.StatusConfirmed})
				run.Changes = append(run.Changes, sim.Change{LotID: simtest.LotB, Seq: 9, ReservationID: "rz", Status: protocol.StatusConfirmed})
			},
		},
		{
			name: "OverstayPaidTwice", check: "overstay_priced_once", want: "paid 2 times",
			break_: func(run *sim.Run) {
				run.Payments = append(run.Payments, sim.StripePayment{SessionID: "cs_o8b", ReservationID: "r8",
					Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_o8b", Amount: 75})
			},
		},
		{
			name: "OverstayMispriced", check: "overstay_priced_once", want: "costs 150, want 75",
			break_: func(run *sim.Run) { run.Reservations[8].Overstay.Amount = 150 },
		},
		{
			name: "OverstayNotCharged", check: "overstay_priced_once", want: "owes no overstay",
			break_: func(run *sim.Run) {
				run.Reservations[8].Overstay = nil
				run.Payments = run.Payments[:len(run.Payments)-1]
				run.Journeys[8].OverstaySession = ""
			},
		},
		{
			name: "OverstayForNothing", check: "overstay_priced_once", want: "left in time",
			break_: func(run *sim.Run) {
				run.Reservations[9].Overstay = &sim.Overstay{Minutes: 1, Amount: 75, Status: "due"}
			},
		},
		{
			name: "CodeOpensCancelled", check: "code_never_opens_cancelled", want: "for cancelled r5",
			also: []string{"no_entry_without_reservation"},
			break_: func(run *sim.Run) {
				// An agent that applied the cancellation (seq 5 by 6s) still
				// honoured the signed code at 29s.
				for i := range run.Reads {
					if run.Reads[i].EventID == "e5" {
						run.Reads[i].Decision, run.Reads[i].Reason, run.Reads[i].ReservationID = "open", protocol.ReasonValid, "r5"
					}
				}
				for i := range run.GateEvents {
					if run.GateEvents[i].EventID == "e5" {
						run.GateEvents[i].Decision, run.GateEvents[i].Reason, run.GateEvents[i].ReservationID = "open", protocol.ReasonValid, "r5"
					}
				}
			},
		},
		{
			name: "TrappedAtExit", check: "exit_never_traps", want: "was not let out",
			break_: func(run *sim.Run) {
				run.Journeys[0].ExitedAt = time.Time{}
				run.Reads[1].Decision, run.Reads[1].Reason = "deny", protocol.ReasonNotInside
				run.GateEvents[1].Decision, run.GateEvents[1].Reason = "deny", protocol.ReasonNotInside
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := simtest.Run()
			tt.break_(run)
			for _, r := range check.Evaluate(run) {
				if r.Name != tt.check {
					if !r.Pass && !slices.Contains(tt.also, r.Name) {
						t.Errorf("%s also failed: %v", r.Name, r.Violations)
					}
					continue
				}
				if r.Pass {
					t.Fatalf("%s passed a broken run", r.Name)
				}
				if !strings.Contains(strings.Join(r.Violations, "\n"), tt.want) {
					t.Fatalf("%s violations %q do not mention %q", r.Name, r.Violations, tt.want)
				}
			}
		})
	}
}

func TestEventsMatchedWithoutIDs(t *testing.T) {
	// An agent that answers without event ids is matched by gate, decision,
	// reason and time.
	run := simtest.Run()
	for i := range run.Reads {
		run.Reads[i].EventID = ""
	}
	if r := check.EventsReachedCloud(run); !r.Pass {
		t.Fatalf("matching by time failed: %v", r.Violations)
	}
	run.GateEvents = run.GateEvents[1:]
	if r := check.EventsReachedCloud(run); r.Pass || r.Failed != 1 {
		t.Fatalf("a lost event went unnoticed: %+v", r)
	}
}

func TestPassed(t *testing.T) {
	if !check.Passed(nil) || check.Passed([]check.Result{{Pass: true}, {Pass: false}}) {
		t.Fatal("Passed is wrong")
	}
}

// A hold that came and went over the interval a booking later extended into
// was no overlap at the time; one still live when the extension was merged
// is.
func TestOverlapSeesWindowsAsTheyWere(t *testing.T) {
	at := func(s float64) time.Time { return simtest.T0.Add(time.Duration(s * float64(time.Second))) }
	build := func(holdEnds protocol.Status) *sim.Run {
		run := simtest.Run()
		run.Reservations = append(run.Reservations, sim.Reservation{ID: "rh", LotID: simtest.LotB, SpotID: 3,
			Plate: "HLD111H", StartsAt: at(52), EndsAt: at(58), Status: holdEnds})
		var kept []sim.Change
		for _, c := range run.Changes {
			if c.ReservationID != "r7" {
				kept = append(kept, c)
			}
		}
		ch := func(seq int64, id string, st protocol.Status, when float64) sim.Change {
			return sim.Change{LotID: simtest.LotB, Seq: seq, ReservationID: id, Status: st, CreatedAt: at(when)}
		}
		run.Changes = append(kept, ch(6, "r7", protocol.StatusPending, 1), ch(7, "r7", protocol.StatusConfirmed, 2.2),
			ch(8, "r7", protocol.StatusCheckedIn, 41), ch(9, "rh", protocol.StatusPending, 42))
		if holdEnds != protocol.StatusPending {
			run.Changes = append(run.Changes, ch(10, "rh", holdEnds, 43))
		}
		// r7's extension was paid at 44 and merged at 44.5.
		run.Changes = append(run.Changes, ch(11, "r7", protocol.StatusCheckedIn, 44.5), ch(12, "r7", protocol.StatusCompleted, 55))
		run.Edges[1].SyncSeq, run.Edges[1].LotSeq = 12, 12
		return run
	}
	if r := check.NoOverlap(build(protocol.StatusExpired)); !r.Pass {
		t.Errorf("a hold that expired before the extension was sold counts as an overlap: %v", r.Violations)
	}
	r := check.NoOverlap(build(protocol.StatusPending))
	if r.Pass || !strings.Contains(strings.Join(r.Violations, "\n"), "r7 became CHECKED_IN while rh was active") {
		t.Errorf("an extension merged over a live hold went unnoticed: %+v", r)
	}
}

// TestOverlapInSilentHistory: a PENDING hold is a silent change, placed
// after the log's change it followed (its Seq) and among the silent ones
// by Silent. A silent hold made while r0 was checked in, over r0's window,
// and expired before r0 left, is an overlap; the same hold made after the
// log's change that completed r0 (the same Seq, silent) is none — the
// log's change at a Seq comes before the silent changes after it.
func TestOverlapInSilentHistory(t *testing.T) {
	build := func(after int64) *sim.Run {
		run := simtest.Run()
		run.Reservations = append(run.Reservations, sim.Reservation{ID: "ry", LotID: simtest.LotA, SpotID: 1,
			Plate: "YYY888Y", StartsAt: simtest.T0.Add(20 * time.Second), EndsAt: simtest.T0.Add(30 * time.Second),
			Status: protocol.StatusExpired})
		// Listed in no particular order: the check sorts.
		run.Changes = append([]sim.Change{
			{LotID: simtest.LotA, Seq: after, Silent: 41, ReservationID: "ry", Status: protocol.StatusExpired},
			{LotID: simtest.LotA, Seq: after, Silent: 40, ReservationID: "ry", Status: protocol.StatusPending},
		}, run.Changes...)
		return run
	}
	// r0 is CHECKED_IN at seq 8 and COMPLETED at seq 9.
	if r := check.NoOverlap(build(8)); r.Pass || !strings.Contains(strings.Join(r.Violations, "\n"), "ry became PENDING while r0 was active") {
		t.Errorf("a silent hold over a checked-in booking went unnoticed: %+v", r)
	}
	if r := check.NoOverlap(build(9)); !r.Pass {
		t.Errorf("a silent hold after the booking completed counts as an overlap: %v", r.Violations)
	}
}

// TestPaidRefusedWhileCutOff (issue 13's soak): a paid driver refused at
// the gate because the booking was confirmed while the simulator had the
// lot's uplink cut, and reached the edge only when the link came back, is
// the cut's doing; the same refusal is the system's when the booking
// reached the edge late with no cut, or long after the link returned.
func TestPaidRefusedWhileCutOff(t *testing.T) {
	t.Parallel()
	at := func(s float64) time.Time { return simtest.T0.Add(time.Duration(s * float64(time.Second))) }
	refused := func(cutUntil, arrived float64, cut bool) *sim.Run {
		run := simtest.Run()
		// Driver 0 (r0, lot-1, [10s,40s)) is refused at 9s and gives up.
		run.Reads[0].Decision, run.Reads[0].Reason, run.Reads[0].ReservationID = "deny", protocol.ReasonNoReservation, ""
		run.GateEvents[0].Decision, run.GateEvents[0].Reason, run.GateEvents[0].ReservationID = "deny", protocol.ReasonNoReservation, ""
		run.Reads = append(run.Reads[:1:1], simtest.Run().Reads[2:]...)
		run.GateEvents = append(run.GateEvents[:1:1], run.GateEvents[2:]...)
		run.Journeys[0].EnteredAt, run.Journeys[0].ExitedAt = time.Time{}, time.Time{}
		// r0 was confirmed (lot-1's seq 3) at 6s; lot-1's edge applied it
		// only at arrived.
		for i, c := range run.Changes {
			if c.ReservationID == "r0" && c.Status == protocol.StatusConfirmed {
				run.Changes[i].CreatedAt = at(6)
			}
		}
		var seqs []sim.SeqSample
		for _, x := range run.EdgeSeqs {
			if x.LotID != simtest.LotA {
				seqs = append(seqs, x)
			}
		}
		run.EdgeSeqs = append(seqs, sim.SeqSample{LotID: simtest.LotA, At: at(4), Seq: 2},
			sim.SeqSample{LotID: simtest.LotA, At: at(arrived), Seq: 21})
		if cut {
			run.Faults = append(run.Faults, sim.Fault{At: at(5), Until: at(cutUntil), Kind: "edge_disk_full", Target: "lot-1"})
		}
		return run
	}
	tests := []struct {
		name string
		run  *sim.Run
		pass bool
	}{
		{"ConfirmedDuringCutArrivedAfterIt", refused(38, 39, true), true},
		{"ArrivedLongAfterTheLinkReturned", refused(20, 30, true), false},
		{"ArrivedLateWithoutCut", refused(38, 39, false), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := check.PaidEnteredOrRefunded(tc.run)
			if r.Pass != tc.pass {
				t.Errorf("pass = %v, want %v: %v", r.Pass, tc.pass, r.Violations)
			}
			if !tc.pass && !slices.ContainsFunc(r.Violations, func(v string) bool { return strings.Contains(v, "came within the window") }) {
				t.Errorf("violations %v do not name the refused driver", r.Violations)
			}
		})
	}
}

// TestExtensionLinkedByTheStore: an extension is traced by the store's own
// link (extends_id) even when the driver's app never heard the answer that
// named it: its payment is its booking's, not a stranger's.
func TestExtensionLinkedByTheStore(t *testing.T) {
	t.Parallel()
	run := simtest.Run()
	for i := range run.Journeys {
		if run.Journeys[i].Extension != nil {
			run.Journeys[i].Extension.ID = "" // the answer was lost
		}
	}
	if r := check.PaidEnteredOrRefunded(run); r.Pass {
		t.Fatal("without any link the extension's payment looks like a stranger's; the test proves nothing")
	}
	for i := range run.Reservations {
		if run.Reservations[i].ID == "r7x" {
			run.Reservations[i].ExtendsID = "r7"
		}
	}
	if r := check.PaidEnteredOrRefunded(run); !r.Pass {
		t.Errorf("extension linked by extends_id: %v", r.Violations)
	}
}
