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
func Run() *sim.Run {
	run := &sim.Run{
		Config: sim.Config{Scenario: "fixture", Seed: 1, Lots: 2, Spots: 2, Drivers: 5, Duration: time.Minute,
			HoldTTL: 8 * time.Second, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second},
		Started: T0, Ended: at(60), Settled: at(61),
		Lots: []sim.Lot{
			{Index: 0, ID: LotA, Name: "lot-1", Spots: 2, Entry: []string{"entry-1"}, Exit: []string{"exit-1"}},
			{Index: 1, ID: LotB, Name: "lot-2", Spots: 1, Entry: []string{"entry-1"}, Exit: []string{"exit-1"}},
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
	}
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
	}
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
	run.Reads[2].BarrierAt, run.Reads[3].BarrierAt = time.Time{}, time.Time{}
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
	run.Refunds = []sim.Refund{{ID: "re_1", PaymentIntentID: "pi_1", Amount: 50, Created: at(11)}}
	run.Webhooks = []sim.Webhook{
		{ID: "evt_0", Type: "checkout.session.completed", Created: at(2), Deliveries: 1, Attempts: 1},
		{ID: "evt_1", Type: "checkout.session.completed", Created: at(8), Deliveries: 2, Attempts: 2},
	}
	run.Occupancy = []sim.Sample{{At: at(9), LotID: LotA, Inside: 1}, {At: at(30), LotID: LotA, Inside: 0}}
	run.Faults = []sim.Fault{{At: at(15), Until: at(25), Kind: "edge_cut", Target: "lot-2"}}
	run.Edges = []sim.EdgeState{{LotID: LotA, Online: true, SyncSeq: 9, LotSeq: 9}, {LotID: LotB, Online: true, SyncSeq: 2, LotSeq: 2}}
	return run
}
