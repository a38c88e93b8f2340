package simtest

import (
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// T0 is the fixture's time zero.
var T0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return T0.Add(time.Duration(s * float64(time.Second))) }

// Lot ids of the fixture.
const (
	LotA = "00000000-0000-0000-0000-00000000000a"
	LotB = "00000000-0000-0000-0000-00000000000b"
)

// Run returns a small run of two lots in which every invariant holds:
//
//	driver 0  AAA111A  lot A spot 1 [10s,40s)  paid, in at 9s, out at 30s
//	driver 1  BBB222B  lot A spot 2 [10s,40s)  paid after the hold ended: refunded; refused at the gate
//	driver 2  CCC333C  lot B spot 3 [10s,40s)  never paid: expired
//	driver 3  DDD444D  intruder, refused
//	driver 4  EEE555E  lot A spot 1 [40s,70s)  paid, no-show (back to back with driver 0)
//
// and the lifecycle journeys (lot A's free cancellation is an hour, lot
// B's none; both at 300 cents an hour):
//
//	driver 5  FFF666F  lot B spot 4 [30s,50s)  paid, cancelled at 5s (in policy): refunded; its code refused at 29s
//	driver 6  GGG777G  lot A spot 2 [45s,60s)  paid, cancel at 20s refused (409 not_cancellable), no-show
//	driver 7  HHH888H  lot B spot 3 [42s,50s)  paid, in at 41s, extended to 56s (row r7x), out at 55s
//	driver 8  III999I  lot A spot 5 [20s,30s)  paid, in at 19s, out at 33s: a 1-minute overstay of 75, paid
//	driver 9  JJJ000J  lot A spot 6 [20s,35s)  paid, camera blind: in with the access code at 19s, out at 34s
func Run() *sim.Run {
	run := &sim.Run{
		Config: sim.Config{Scenario: "fixture", Seed: 1, Lots: 2, Spots: 2, Drivers: 5, Duration: time.Minute,
			HoldTTL: 8 * time.Second, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second},
		Started: T0, Ended: at(60), Settled: at(61),
		Lots: []sim.Lot{
			{Index: 0, ID: LotA, Name: "lot-1", Spots: 2, Entry: []string{"entry-1"}, Exit: []string{"exit-1"},
				HourlyRate: 300, FreeCancellation: time.Hour, ExitGrace: 2 * time.Second},
			{Index: 1, ID: LotB, Name: "lot-2", Spots: 1, Entry: []string{"entry-1"}, Exit: []string{"exit-1"},
				HourlyRate: 300, ExitGrace: 2 * time.Second},
		},
	}
	res := func(id, lot string, spot int64, plate string, from, to float64, status protocol.Status, pi string) sim.Reservation {
		return sim.Reservation{ID: id, LotID: lot, SpotID: spot, Plate: plate, StartsAt: at(from), EndsAt: at(to),
			Status: status, HoldExpiresAt: at(9), SessionID: "cs_" + id, PaymentIntentID: pi, CreatedAt: at(1)}
	}
	run.Reservations = []sim.Reservation{
		res("r0", LotA, 1, "AAA111A", 10, 40, protocol.StatusCompleted, "pi_0"),
		res("r1", LotA, 2, "BBB222B", 10, 40, protocol.StatusRefunded, "pi_1"),
		res("r2", LotB, 3, "CCC333C", 10, 40, protocol.StatusExpired, ""),
		res("r4", LotA, 1, "EEE555E", 40, 70, protocol.StatusConfirmed, "pi_4"),
		res("r5", LotB, 4, "FFF666F", 30, 50, protocol.StatusCancelled, "pi_5"),
		res("r6", LotA, 2, "GGG777G", 45, 60, protocol.StatusConfirmed, "pi_6"),
		res("r7", LotB, 3, "HHH888H", 42, 56, protocol.StatusCompleted, "pi_7"),
		res("r7x", LotB, 3, "HHH888H", 50, 56, protocol.StatusCompleted, "pi_7x"),
		res("r8", LotA, 5, "III999I", 20, 30, protocol.StatusCompleted, "pi_8"),
		res("r9", LotA, 6, "JJJ000J", 20, 35, protocol.StatusCompleted, "pi_9"),
	}
	run.Reservations[4].Refunded = 50
	run.Reservations[8].Overstay = &sim.Overstay{Minutes: 1, Amount: 75, Status: "paid", SessionID: "cs_o8"}
	ch := func(lot string, seq int64, id string, status protocol.Status) sim.Change {
		return sim.Change{LotID: lot, Seq: seq, ReservationID: id, Status: status}
	}
	run.Changes = []sim.Change{
		ch(LotA, 1, "r0", protocol.StatusPending), ch(LotA, 2, "r1", protocol.StatusPending),
		ch(LotA, 3, "r0", protocol.StatusConfirmed), ch(LotA, 4, "r1", protocol.StatusExpired),
		ch(LotA, 5, "r1", protocol.StatusRefunded), ch(LotA, 6, "r4", protocol.StatusPending),
		ch(LotA, 7, "r4", protocol.StatusConfirmed), ch(LotA, 8, "r0", protocol.StatusCheckedIn),
		ch(LotA, 9, "r0", protocol.StatusCompleted),
		ch(LotB, 1, "r2", protocol.StatusPending), ch(LotB, 2, "r2", protocol.StatusExpired),
		ch(LotB, 3, "r5", protocol.StatusPending), ch(LotB, 4, "r5", protocol.StatusConfirmed),
		ch(LotB, 5, "r5", protocol.StatusCancelled),
		ch(LotA, 20, "r6", protocol.StatusPending), ch(LotA, 21, "r6", protocol.StatusConfirmed),
		ch(LotB, 6, "r7", protocol.StatusPending), ch(LotB, 7, "r7", protocol.StatusConfirmed),
		ch(LotB, 8, "r7", protocol.StatusCheckedIn), ch(LotB, 9, "r7", protocol.StatusCheckedIn), // the extension merged
		ch(LotB, 10, "r7", protocol.StatusCompleted),
		ch(LotA, 22, "r8", protocol.StatusPending), ch(LotA, 23, "r8", protocol.StatusConfirmed),
		ch(LotA, 24, "r8", protocol.StatusCheckedIn), ch(LotA, 25, "r8", protocol.StatusCompleted),
		ch(LotA, 26, "r9", protocol.StatusPending), ch(LotA, 27, "r9", protocol.StatusConfirmed),
		ch(LotA, 28, "r9", protocol.StatusCheckedIn), ch(LotA, 29, "r9", protocol.StatusCompleted),
	}
	run.EdgeSeqs = []sim.SeqSample{{LotID: LotB, At: at(6), Seq: 5}, {LotID: LotA, At: at(6), Seq: 21}}
	hold := []sim.HoldAttempt{{At: at(1), Status: 201, Latency: 20 * time.Millisecond}}
	run.Journeys = []sim.Journey{
		{Driver: 0, Plate: "AAA111A", Plan: sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow}, LotID: LotA,
			StartsAt: at(10), EndsAt: at(40), Holds: hold, ReservationID: "r0", SessionID: "cs_r0", HoldExpiresAt: at(9),
			PaidAt: at(2), PaymentIntentID: "pi_0", WebhookAt: at(2.1), EnteredAt: at(9), ExitedAt: at(30)},
		{Driver: 1, Plate: "BBB222B", Plan: sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayLate}, LotID: LotA,
			StartsAt: at(10), EndsAt: at(40), Holds: hold, ReservationID: "r1", SessionID: "cs_r1", HoldExpiresAt: at(9),
			PaidAt: at(8), PaymentIntentID: "pi_1", WebhookAt: at(10.5), GaveUp: protocol.ReasonNoReservation},
		{Driver: 2, Plate: "CCC333C", Plan: sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNever, Lot: 1}, LotID: LotB,
			StartsAt: at(10), EndsAt: at(40), Holds: hold, ReservationID: "r2", SessionID: "cs_r2", HoldExpiresAt: at(9)},
		{Driver: 3, Plate: "DDD444D", Plan: sim.Plan{Arrival: sim.ArrivalIntruder}, LotID: LotA, StartsAt: at(10), EndsAt: at(40),
			GaveUp: protocol.ReasonNoReservation},
		{Driver: 4, Plate: "EEE555E", Plan: sim.Plan{Arrival: sim.ArrivalNoShow, Payment: sim.PayNow}, LotID: LotA,
			StartsAt: at(40), EndsAt: at(70), Holds: hold, ReservationID: "r4", SessionID: "cs_r4", HoldExpiresAt: at(9),
			PaidAt: at(3), PaymentIntentID: "pi_4", WebhookAt: at(3.1)},
	}
	paid := func(d int, plate string, plan sim.Plan, lot, id string, from, to float64) sim.Journey {
		return sim.Journey{Driver: d, Plate: plate, Plan: plan, LotID: lot, StartsAt: at(from), EndsAt: at(to), Holds: hold,
			ReservationID: id, SessionID: "cs_" + id, HoldExpiresAt: at(9), PaidAt: at(2), PaymentIntentID: "pi_" + id[1:],
			WebhookAt: at(2.1), ConfirmedAt: at(2.2)}
	}
	j5 := paid(5, "FFF666F", sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Life: sim.LifeCancelIn, Lot: 1}, LotB, "r5", 30, 50)
	j5.Cancel = &sim.Cancel{At: at(5), RTT: 20 * time.Millisecond, InPolicy: true, Status: 200, Refund: 50, CodeTried: true}
	j6 := paid(6, "GGG777G", sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Life: sim.LifeCancelOut}, LotA, "r6", 45, 60)
	j6.Cancel = &sim.Cancel{At: at(20), RTT: 5 * time.Millisecond, Status: 409, Code: "not_cancellable"}
	j7 := paid(7, "HHH888H", sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Life: sim.LifeExtend, Lot: 1}, LotB, "r7", 42, 50)
	j7.Extension = &sim.Extension{At: at(43), EndsAt: at(56), Status: 201, ID: "r7x", SessionID: "cs_r7x", PaidAt: at(44), Applied: at(45)}
	j7.EnteredAt, j7.ExitedAt = at(41), at(55)
	j8 := paid(8, "III999I", sim.Plan{Arrival: sim.ArrivalOverstay, Payment: sim.PayNow, Life: sim.LifeOverstayPay}, LotA, "r8", 20, 30)
	j8.EnteredAt, j8.ExitedAt, j8.OverstaySession, j8.OverstayPaidAt, j8.OverstayStatus = at(19), at(33), "cs_o8", at(35), "paid"
	j9 := paid(9, "JJJ000J", sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Life: sim.LifeAccessCode}, LotA, "r9", 20, 35)
	j9.EnteredAt, j9.ExitedAt = at(19), at(34)
	run.Journeys = append(run.Journeys, j5, j6, j7, j8, j9)
	read := func(driver int, lot, gate, dir, plate string, sent float64, decision, reason, resID, event string) sim.Read {
		return sim.Read{Driver: driver, LotID: lot, GateID: gate, Direction: dir, Plate: plate, Sent: plate, Confidence: 0.93,
			SentAt: at(sent), RTT: 2 * time.Millisecond, Decision: decision, Reason: reason, ReservationID: resID,
			EventID: event, DecidedInUs: 40, BarrierAt: at(sent).Add(time.Millisecond)}
	}
	run.Reads = []sim.Read{
		read(0, LotA, "entry-1", protocol.DirectionEntry, "AAA111A", 9, "open", protocol.ReasonValid, "r0", "e0"),
		read(0, LotA, "exit-1", protocol.DirectionExit, "AAA111A", 30, "open", protocol.ReasonInside, "r0", "e1"),
		read(1, LotA, "entry-1", protocol.DirectionEntry, "BBB222B", 11, "deny", protocol.ReasonNoReservation, "", "e2"),
		read(3, LotA, "entry-1", protocol.DirectionEntry, "DDD444D", 12, "deny", protocol.ReasonNoReservation, "", "e3"),
	}
	code := func(driver int, lot, plate string, sent float64, decision, reason, resID, event string) sim.Read {
		r := read(driver, lot, "entry-1", protocol.DirectionEntry, plate, sent, decision, reason, resID, event)
		r.Sent, r.Code, r.Confidence = "access code", true, 1
		return r
	}
	run.Reads = append(run.Reads,
		code(5, LotB, "FFF666F", 29, "deny", protocol.ReasonNoReservation, "", "e5"),
		read(7, LotB, "entry-1", protocol.DirectionEntry, "HHH888H", 41, "open", protocol.ReasonValid, "r7", "e7"),
		read(7, LotB, "exit-1", protocol.DirectionExit, "HHH888H", 55, "open", protocol.ReasonInside, "r7", "e7x"),
		read(8, LotA, "entry-1", protocol.DirectionEntry, "III999I", 19, "open", protocol.ReasonValid, "r8", "e8"),
		read(8, LotA, "exit-1", protocol.DirectionExit, "III999I", 33, "open", protocol.ReasonInside, "r8", "e8x"),
		code(9, LotA, "JJJ000J", 19.5, "open", protocol.ReasonValid, "r9", "e9"),
		read(9, LotA, "exit-1", protocol.DirectionExit, "JJJ000J", 34, "open", protocol.ReasonInside, "r9", "e9x"),
	)
	run.Reads[2].BarrierAt, run.Reads[3].BarrierAt, run.Reads[4].BarrierAt = time.Time{}, time.Time{}, time.Time{}

	// Permit holders (issue 15): driver 10 comes and goes on its permit;
	// driver 11's permit is revoked and it is refused once the edge has
	// the revocation; driver 12's exit is missed, it is refused
	// already_inside, the operator resets it, and it gets in again.
	run.Permits = []sim.Permit{
		{ID: "p10", LotID: LotB, Plate: "KKK111K", ValidFrom: at(0), ValidUntil: at(3600), CreatedAt: at(1), Seq: 11},
		{ID: "p11", LotID: LotB, Plate: "LLL222L", ValidFrom: at(0), ValidUntil: at(3600), CreatedAt: at(1), Seq: 12,
			RevokedAt: at(13), RevokeSeq: 13},
		{ID: "p12", LotID: LotA, Plate: "MMM333M", ValidFrom: at(0), ValidUntil: at(3600), CreatedAt: at(1), Seq: 30},
	}
	run.EdgeSeqs = append(run.EdgeSeqs, sim.SeqSample{LotID: LotB, At: at(11), Seq: 12}, sim.SeqSample{LotID: LotB, At: at(14), Seq: 13},
		sim.SeqSample{LotID: LotA, At: at(10), Seq: 30}, sim.SeqSample{LotID: LotA, At: at(17), Seq: 31})
	j10 := sim.Journey{Driver: 10, Plate: "KKK111K", Plan: sim.Plan{Arrival: sim.ArrivalPermit, Lot: 1}, LotID: LotB,
		Permit: &sim.PermitLife{ID: "p10", Status: 201}, EnteredAt: at(12), ExitedAt: at(16)}
	j11 := sim.Journey{Driver: 11, Plate: "LLL222L", Plan: sim.Plan{Arrival: sim.ArrivalRevoked, Lot: 1}, LotID: LotB,
		Permit: &sim.PermitLife{ID: "p11", Status: 201, RevokedAt: at(13), Revoke: 204, Tried: true}}
	j12 := sim.Journey{Driver: 12, Plate: "MMM333M", Plan: sim.Plan{Arrival: sim.ArrivalPermit, Life: sim.LifeReset}, LotID: LotA,
		Permit: &sim.PermitLife{ID: "p12", Status: 201, Reset: &sim.Reset{DeniedBefore: protocol.ReasonAlreadyInside, At: at(15.5),
			Status: 202, Seq: 31, Synced: at(17), After: protocol.ReasonPermit}}, EnteredAt: at(18), ExitedAt: at(21)}
	run.Journeys = append(run.Journeys, j10, j11, j12)
	run.Reads = append(run.Reads,
		read(10, LotB, "entry-1", protocol.DirectionEntry, "KKK111K", 12, "open", protocol.ReasonPermit, "", "e10"),
		read(10, LotB, "exit-1", protocol.DirectionExit, "KKK111K", 16, "open", protocol.ReasonInside, "", "e10x"),
		read(11, LotB, "entry-1", protocol.DirectionEntry, "LLL222L", 20, "deny", protocol.ReasonNoReservation, "", "e11"),
		read(12, LotA, "entry-1", protocol.DirectionEntry, "MMM333M", 11, "open", protocol.ReasonPermit, "", "e12"),
		read(12, LotA, "entry-1", protocol.DirectionEntry, "MMM333M", 15, "deny", protocol.ReasonAlreadyInside, "", "e12b"),
		read(12, LotA, "entry-1", protocol.DirectionEntry, "MMM333M", 18, "open", protocol.ReasonPermit, "", "e12c"),
		read(12, LotA, "exit-1", protocol.DirectionExit, "MMM333M", 21, "open", protocol.ReasonInside, "", "e12x"),
	)
	for _, i := range []int{len(run.Reads) - 5, len(run.Reads) - 3} {
		run.Reads[i].BarrierAt = time.Time{}
	}
	for _, r := range run.Reads {
		run.GateEvents = append(run.GateEvents, sim.GateEvent{EventID: r.EventID, LotID: r.LotID, GateID: r.GateID,
			Direction: r.Direction, Kind: protocol.KindDecision, Plate: r.Plate, Decision: r.Decision, Reason: r.Reason,
			ReservationID: r.ReservationID, OccurredAt: r.SentAt.Add(time.Millisecond),
			ReceivedAt: r.SentAt.Add(6 * time.Millisecond), DecidedInUs: r.DecidedInUs})
	}
	run.Payments = []sim.StripePayment{
		{SessionID: "cs_r0", ReservationID: "r0", Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_0", Amount: 50},
		{SessionID: "cs_r1", ReservationID: "r1", Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_1", Amount: 50},
		{SessionID: "cs_r2", ReservationID: "r2", Status: "expired", PaymentStatus: "unpaid", Amount: 50},
		{SessionID: "cs_r4", ReservationID: "r4", Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_4", Amount: 50},
	}
	for _, id := range []string{"r5", "r6", "r7", "r7x", "r8", "r9"} {
		run.Payments = append(run.Payments, sim.StripePayment{SessionID: "cs_" + id, ReservationID: id, Status: "complete",
			PaymentStatus: "paid", PaymentIntentID: "pi_" + id[1:], Amount: 50})
	}
	run.Payments = append(run.Payments, sim.StripePayment{SessionID: "cs_o8", ReservationID: "r8", Status: "complete",
		PaymentStatus: "paid", PaymentIntentID: "pi_o8", Amount: 75})
	run.Refunds = []sim.Refund{{ID: "re_1", PaymentIntentID: "pi_1", Amount: 50, Created: at(11)},
		{ID: "re_5", PaymentIntentID: "pi_5", Amount: 50, Created: at(5)}}
	run.Webhooks = []sim.Webhook{
		{ID: "evt_0", Type: "checkout.session.completed", Created: at(2), Deliveries: 1, Attempts: 1},
		{ID: "evt_1", Type: "checkout.session.completed", Created: at(8), Deliveries: 2, Attempts: 2},
	}
	run.Occupancy = []sim.Sample{{At: at(9), LotID: LotA, Inside: 1}, {At: at(30), LotID: LotA, Inside: 0}}
	run.Faults = []sim.Fault{{At: at(15), Until: at(25), Kind: "edge_cut", Target: "lot-2"}}
	run.Edges = []sim.EdgeState{{LotID: LotA, Online: true, SyncSeq: 31, LotSeq: 31}, {LotID: LotB, Online: true, SyncSeq: 13, LotSeq: 13}}
	return run
}
