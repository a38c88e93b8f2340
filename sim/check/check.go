package check

import (
	"fmt"
	"sort"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// MaxListed bounds the violations a result lists; Failed counts them all.
const MaxListed = 20

// Result is one invariant's verdict.
type Result struct {
	Name       string   `json:"name"`
	Title      string   `json:"title"`
	Source     string   `json:"source"` // where the facts came from
	Pass       bool     `json:"pass"`
	Checked    int      `json:"checked"` // how many things were checked
	Failed     int      `json:"failed"`
	Violations []string `json:"violations,omitempty"`
}

func (r *Result) fail(format string, args ...any) {
	r.Failed++
	if len(r.Violations) < MaxListed {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

func (r *Result) done() Result {
	r.Pass = r.Failed == 0
	return *r
}

// Check is one invariant.
type Check struct {
	Name string
	Run  func(*sim.Run) Result
}

// All is every invariant, in report order.
var All = []Check{
	{"no_overlap", NoOverlap},
	{"paid_entered_or_refunded", PaidEnteredOrRefunded},
	{"events_reached_cloud", EventsReachedCloud},
	{"late_payment_refunded_once", LatePaymentRefundedOnce},
	{"no_entry_without_reservation", NoEntryWithoutReservation},
	{"idempotent_holds", IdempotentHolds},
	{"exit_never_traps", ExitNeverTraps},
}

// Evaluate runs every invariant over run.
func Evaluate(run *sim.Run) []Result {
	out := make([]Result, 0, len(All))
	for _, c := range All {
		out = append(out, c.Run(run))
	}
	return out
}

// Passed reports whether every result passed.
func Passed(rs []Result) bool {
	for _, r := range rs {
		if !r.Pass {
			return false
		}
	}
	return true
}

// honoured is a reservation that was paid for and kept: one a gate may open
// for (or did).
func honoured(status protocol.Status) bool {
	return status.OpensGate() || status == protocol.StatusCompleted
}

func overlaps(a, b *sim.Reservation) bool {
	return a.StartsAt.Before(b.EndsAt) && a.EndsAt.After(b.StartsAt)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// NoOverlap: no two active reservations of one spot overlap — now, in the
// reservations table, and at any point of the run, by replaying each lot's
// change log in sequence order (every status change is logged in the
// transaction that made it, so the log is the history of who held a spot).
func NoOverlap(run *sim.Run) Result {
	r := Result{Name: "no_overlap", Title: "no two active reservations of a spot overlap",
		Source: "postgres: reservations (now) and outbox (history)"}
	bySpot := map[int64][]*sim.Reservation{}
	byID := make(map[string]*sim.Reservation, len(run.Reservations))
	for i := range run.Reservations {
		res := &run.Reservations[i]
		byID[res.ID] = res
		if res.Status.Active() {
			bySpot[res.SpotID] = append(bySpot[res.SpotID], res)
		}
	}
	r.Checked = len(run.Reservations)
	spots := make([]int64, 0, len(bySpot))
	for s := range bySpot {
		spots = append(spots, s)
	}
	sort.Slice(spots, func(i, j int) bool { return spots[i] < spots[j] })
	for _, s := range spots {
		rs := bySpot[s]
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				if overlaps(rs[i], rs[j]) {
					r.fail("spot %d: %s %s [%s, %s) and %s %s [%s, %s) are both active and overlap",
						s, short(rs[i].ID), rs[i].Status, hm(rs[i].StartsAt), hm(rs[i].EndsAt),
						short(rs[j].ID), rs[j].Status, hm(rs[j].StartsAt), hm(rs[j].EndsAt))
				}
			}
		}
	}

	// History: replay each lot's log.
	changes := append([]sim.Change(nil), run.Changes...)
	sort.Slice(changes, func(i, j int) bool {
		if changes[i].LotID != changes[j].LotID {
			return changes[i].LotID < changes[j].LotID
		}
		return changes[i].Seq < changes[j].Seq
	})
	live := map[int64]map[string]bool{} // spot → active reservation ids
	seen := map[string]bool{}           // pairs reported
	for _, c := range changes {
		res, ok := byID[c.ReservationID]
		if !ok {
			continue
		}
		set := live[res.SpotID]
		if set == nil {
			set = map[string]bool{}
			live[res.SpotID] = set
		}
		if !c.Status.Active() {
			delete(set, res.ID)
			continue
		}
		if !set[res.ID] {
			for other := range set {
				o := byID[other]
				key := min(o.ID, res.ID) + max(o.ID, res.ID)
				if overlaps(o, res) && !seen[key] {
					seen[key] = true
					r.fail("spot %d at lot seq %d: %s became %s while %s was active, and their windows overlap",
						res.SpotID, c.Seq, short(res.ID), c.Status, short(o.ID))
				}
			}
		}
		set[res.ID] = true
	}
	return r.done()
}

func hm(t time.Time) string { return t.UTC().Format("15:04:05") }

// entries are the entry decisions a run knows of, from the cloud's
// gate_events and the simulator's reads, joined by event id.
type entry struct {
	eventID   string
	lotID     string
	plate     string // the car's real plate when the simulator posted the read, else the plate the edge decided on
	edgePlate string
	resID     string
	at        time.Time // when the gate decided, or at the earliest when only the simulator saw it
	atMax     time.Time // at the latest
	open      bool
	fromSim   bool
	driver    int
}

func entries(run *sim.Run) []entry {
	dirs := gateDirections(run)
	var out []entry
	byEvent := map[string]int{}
	for _, rd := range run.Reads {
		if rd.Direction != protocol.DirectionEntry || rd.Decision == "" {
			continue
		}
		e := entry{eventID: rd.EventID, lotID: rd.LotID, plate: rd.Plate, resID: rd.ReservationID,
			at: rd.SentAt, atMax: rd.SentAt.Add(rd.RTT), open: rd.Open(), fromSim: true, driver: rd.Driver}
		if rd.EventID != "" {
			byEvent[rd.EventID] = len(out)
		}
		out = append(out, e)
	}
	for _, ge := range run.GateEvents {
		dir := ge.Direction
		if dir == "" {
			dir = dirs[ge.LotID+"/"+ge.GateID]
		}
		if dir != protocol.DirectionEntry {
			continue
		}
		if i, ok := byEvent[ge.EventID]; ok {
			// The edge's own clock is the time of the decision.
			out[i].at, out[i].atMax, out[i].edgePlate = ge.OccurredAt, ge.OccurredAt, ge.Plate
			if ge.ReservationID != "" {
				out[i].resID = ge.ReservationID
			}
			out[i].open = out[i].open || ge.Decision == protocol.DecisionOpen
			continue
		}
		out = append(out, entry{eventID: ge.EventID, lotID: ge.LotID, plate: ge.Plate, edgePlate: ge.Plate,
			resID: ge.ReservationID, at: ge.OccurredAt, atMax: ge.OccurredAt, open: ge.Decision == protocol.DecisionOpen, driver: -1})
	}
	return out
}

func gateDirections(run *sim.Run) map[string]string {
	m := map[string]string{}
	for _, l := range run.Lots {
		for _, g := range l.Entry {
			m[l.ID+"/"+g] = protocol.DirectionEntry
		}
		for _, g := range l.Exit {
			m[l.ID+"/"+g] = protocol.DirectionExit
		}
	}
	return m
}

// NoEntryWithoutReservation: every entry the gates opened was for a car
// whose own reservation at that lot was paid and kept (CONFIRMED, then
// CHECKED_IN or COMPLETED) and covered the moment of entry, early grace
// included. Openings come from the cloud's gate_events and the simulator's
// reads; the car's real plate comes from the simulator, which knows which
// car stood at the gate whatever the camera read.
func NoEntryWithoutReservation(run *sim.Run) Result {
	r := Result{Name: "no_entry_without_reservation", Title: "no car let in without a valid reservation",
		Source: "postgres: gate_events, reservations; simulator: which car was at the gate"}
	byID := map[string]*sim.Reservation{}
	for i := range run.Reservations {
		byID[run.Reservations[i].ID] = &run.Reservations[i]
	}
	grace := run.Config.EarlyGrace
	for _, e := range entries(run) {
		if !e.open {
			continue
		}
		r.Checked++
		who := "car " + e.plate
		if !e.fromSim {
			who = "plate " + e.plate + " (an event the simulator did not cause)"
		}
		res, ok := byID[e.resID]
		switch {
		case e.resID == "":
			r.fail("%s let in at %s with no reservation named", who, hm(e.at))
		case !ok:
			r.fail("%s let in at %s for reservation %s, which the cloud does not have", who, hm(e.at), short(e.resID))
		case res.LotID != e.lotID:
			r.fail("%s let in at %s for reservation %s of another lot", who, hm(e.at), short(e.resID))
		case !honoured(res.Status):
			r.fail("%s let in at %s for reservation %s, which is %s", who, hm(e.at), short(e.resID), res.Status)
		case res.Plate != e.plate:
			r.fail("%s let in at %s on reservation %s of plate %s", who, hm(e.at), short(e.resID), res.Plate)
		// The edge's clock is this machine's; a decision only the simulator
		// saw happened between sending the read and the answer.
		case e.atMax.Before(res.StartsAt.Add(-grace)) || !e.at.Before(res.EndsAt):
			r.fail("%s let in at %s outside its window [%s, %s) (early grace %s)", who, hm(e.at),
				hm(res.StartsAt), hm(res.EndsAt), grace)
		}
	}
	return r.done()
}

// EventsReachedCloud: every gate event the edges made — each read the
// simulator posted was answered with one — is in the cloud's gate_events,
// with the same decision and reason, offline or not; and each edge's outbox
// is empty at the end.
func EventsReachedCloud(run *sim.Run) Result {
	r := Result{Name: "events_reached_cloud", Title: "every gate event the edges made reached the cloud",
		Source: "simulator: answered reads; postgres: gate_events; edges: outbox depth"}
	byID := make(map[string]*sim.GateEvent, len(run.GateEvents))
	for i := range run.GateEvents {
		byID[run.GateEvents[i].EventID] = &run.GateEvents[i]
	}
	// Reads answered without an event id are matched by gate, decision,
	// reason and time instead; each cloud event serves one read.
	used := map[string]bool{}
	var unnamed []sim.Read
	for _, rd := range run.Reads {
		if rd.Decision == "" {
			continue // no answer: the edge may or may not have decided
		}
		r.Checked++
		if rd.EventID == "" {
			unnamed = append(unnamed, rd)
			continue
		}
		ge, ok := byID[rd.EventID]
		switch {
		case !ok:
			r.fail("event %s (%s %s/%s %s %s%s) is missing", short(rd.EventID), hm(rd.SentAt),
				lotName(run, rd.LotID), rd.GateID, rd.Decision, rd.Reason, cutNote(rd))
		case ge.Decision != rd.Decision || ge.Reason != rd.Reason:
			r.fail("event %s: gate said %s/%s, cloud has %s/%s", short(rd.EventID), rd.Decision, rd.Reason, ge.Decision, ge.Reason)
		default:
			used[rd.EventID] = true
		}
	}
	if len(unnamed) > 0 {
		pool := map[string][]*sim.GateEvent{}
		for i := range run.GateEvents {
			ge := &run.GateEvents[i]
			if used[ge.EventID] {
				continue
			}
			k := ge.LotID + "/" + ge.GateID + "/" + ge.Decision + "/" + ge.Reason
			pool[k] = append(pool[k], ge)
		}
		for _, rd := range unnamed {
			k := rd.LotID + "/" + rd.GateID + "/" + rd.Decision + "/" + rd.Reason
			found := -1
			for i, ge := range pool[k] {
				if !ge.OccurredAt.Before(rd.SentAt.Add(-time.Second)) && !ge.OccurredAt.After(rd.SentAt.Add(rd.RTT+time.Second)) {
					found = i
					break
				}
			}
			if found < 0 {
				r.fail("read at %s %s/%s (%s %s%s) has no event in the cloud", hm(rd.SentAt),
					lotName(run, rd.LotID), rd.GateID, rd.Decision, rd.Reason, cutNote(rd))
				continue
			}
			pool[k] = append(pool[k][:found], pool[k][found+1:]...)
		}
	}
	for _, e := range run.Edges {
		if e.OutboxDepth > 0 {
			r.fail("edge of %s still holds %d events in its outbox", lotName(run, e.LotID), e.OutboxDepth)
		}
	}
	return r.done()
}

// cutNote says when a read was made while the simulator had the lot's
// uplink cut.
func cutNote(rd sim.Read) string {
	if rd.Offline {
		return ", uplink cut"
	}
	return ""
}

func lotName(run *sim.Run, id string) string {
	for _, l := range run.Lots {
		if l.ID == id {
			return l.Name
		}
	}
	return short(id)
}

// paymentsByReservation indexes paid sessions.
func paidSessions(run *sim.Run) []sim.StripePayment {
	var out []sim.StripePayment
	for _, p := range run.Payments {
		if p.Paid() {
			out = append(out, p)
		}
	}
	return out
}

func refundsByIntent(run *sim.Run) map[string][]sim.Refund {
	m := map[string][]sim.Refund{}
	for _, rf := range run.Refunds {
		m[rf.PaymentIntentID] = append(m[rf.PaymentIntentID], rf)
	}
	return m
}

// LatePaymentRefundedOnce: every payment the cloud did not honour (the hold
// had expired when the money arrived) was refunded exactly once and its
// reservation is REFUNDED; every honoured payment was refunded zero times;
// no refund is for a payment nobody made; and every driver whose payment
// reached the cloud only after the hold ended is among the refunded.
func LatePaymentRefundedOnce(run *sim.Run) Result {
	r := Result{Name: "late_payment_refunded_once", Title: "every expired-and-paid hold refunded exactly once",
		Source: "stripe stand-in: sessions, refunds; postgres: reservations; simulator: when payments reached the cloud"}
	byID := map[string]*sim.Reservation{}
	for i := range run.Reservations {
		byID[run.Reservations[i].ID] = &run.Reservations[i]
	}
	refunds := refundsByIntent(run)
	paidIntents := map[string]bool{}
	for _, p := range paidSessions(run) {
		r.Checked++
		paidIntents[p.PaymentIntentID] = true
		n := len(refunds[p.PaymentIntentID])
		res, ok := byID[p.ReservationID]
		switch {
		case !ok:
			if n != 1 {
				r.fail("session %s paid for unknown reservation %s: %d refunds, want 1", short(p.SessionID), short(p.ReservationID), n)
			}
		case honoured(res.Status):
			if n != 0 {
				r.fail("reservation %s is %s yet its payment was refunded %d times", short(res.ID), res.Status, n)
			}
		default:
			if n != 1 {
				r.fail("reservation %s (%s) was paid after its hold ended: %d refunds, want exactly 1", short(res.ID), res.Status, n)
			}
			if res.Status != protocol.StatusRefunded {
				r.fail("reservation %s was paid after its hold ended but is %s, not REFUNDED", short(res.ID), res.Status)
			}
		}
	}
	for pi, rs := range refunds {
		if !paidIntents[pi] {
			r.fail("%d refund(s) for payment %s, which no session paid", len(rs), pi)
		}
	}
	for _, j := range run.Journeys {
		if !j.Paid() || j.WebhookAt.IsZero() || j.HoldExpiresAt.IsZero() || !j.WebhookAt.After(j.HoldExpiresAt) {
			continue
		}
		res, ok := byID[j.ReservationID]
		if !ok || res.Status != protocol.StatusRefunded {
			status := "missing"
			if ok {
				status = string(res.Status)
			}
			r.fail("driver %d's payment reached the cloud %s after the hold ended, yet the reservation is %s",
				j.Driver, j.WebhookAt.Sub(j.HoldExpiresAt).Round(time.Millisecond), status)
		}
	}
	return r.done()
}

// WindowSlack is how much of its window a car must have left when it comes
// for a refusal to count against the system: a car at the barrier in the
// last moments of its booking may run out of time while the camera reads
// again. Seconds in a simulation that compresses hours into a minute.
const WindowSlack = 2 * time.Second

// PaidEnteredOrRefunded: every driver whose payment went through either got
// in or got the money back — unless the car did not come within its window
// (a no-show, or too late, or with less than WindowSlack of it left), which
// is the driver's loss, as in any car park.
func PaidEnteredOrRefunded(run *sim.Run) Result {
	r := Result{Name: "paid_entered_or_refunded", Title: "every paid driver got in or got a refund",
		Source: "stripe stand-in: sessions, refunds; postgres: gate_events; simulator: when each car came"}
	refunds := refundsByIntent(run)
	opened := map[string]bool{} // reservation ids an entry opened for
	for _, e := range entries(run) {
		if e.open && e.resID != "" {
			opened[e.resID] = true
		}
	}
	journeys := map[string]*sim.Journey{}
	for i := range run.Journeys {
		if id := run.Journeys[i].ReservationID; id != "" {
			journeys[id] = &run.Journeys[i]
		}
	}
	grace := run.Config.EarlyGrace
	cameInWindow := map[int]bool{}
	for _, rd := range run.Reads {
		if rd.Direction != protocol.DirectionEntry {
			continue
		}
		j := findJourney(run, rd.Driver)
		if j == nil || j.StartsAt.IsZero() {
			continue
		}
		if !rd.SentAt.Before(j.StartsAt.Add(-grace)) && rd.SentAt.Before(j.EndsAt.Add(-WindowSlack)) {
			cameInWindow[rd.Driver] = true
		}
	}
	for _, p := range paidSessions(run) {
		r.Checked++
		if opened[p.ReservationID] || len(refunds[p.PaymentIntentID]) > 0 {
			continue
		}
		j := journeys[p.ReservationID]
		switch {
		case j == nil:
			r.fail("reservation %s was paid, never entered, never refunded, and no simulated driver made it", short(p.ReservationID))
		case cameInWindow[j.Driver]:
			r.fail("driver %d (%s) paid and came within the window but was not let in (last answer: %s)",
				j.Driver, j.Plate, lastAnswer(run, j.Driver))
		}
	}
	return r.done()
}

func findJourney(run *sim.Run, driver int) *sim.Journey {
	if driver >= 0 && driver < len(run.Journeys) && run.Journeys[driver].Driver == driver {
		return &run.Journeys[driver]
	}
	for i := range run.Journeys {
		if run.Journeys[i].Driver == driver {
			return &run.Journeys[i]
		}
	}
	return nil
}

func lastAnswer(run *sim.Run, driver int) string {
	for i := len(run.Reads) - 1; i >= 0; i-- {
		rd := run.Reads[i]
		if rd.Driver == driver && rd.Direction == protocol.DirectionEntry {
			if rd.Err != "" {
				return "error " + rd.Err
			}
			return rd.Decision + "/" + rd.Reason
		}
	}
	return "none"
}

// Live reports whether a reservation is or was of use to its driver, or
// took money: anything but a hold that ended (EXPIRED, CANCELLED) unpaid.
// A request whose answer never reached the driver may leave such an ended
// hold behind, which costs the driver nothing.
func Live(r *sim.Reservation) bool {
	switch r.Status {
	case protocol.StatusExpired, protocol.StatusCancelled:
		return r.PaymentIntentID != ""
	}
	return true
}

// IdempotentHolds: a driver's hold request, however often it was retried
// with its Idempotency-Key after a timeout, left the driver at most one live
// reservation, and it is the one the driver was given; a driver who was
// refused has none.
func IdempotentHolds(run *sim.Run) Result {
	r := Result{Name: "idempotent_holds", Title: "retried hold requests made at most one live reservation each",
		Source: "postgres: reservations by plate; simulator: hold attempts"}
	byPlate := map[string][]*sim.Reservation{}
	for i := range run.Reservations {
		res := &run.Reservations[i]
		if Live(res) {
			byPlate[res.Plate] = append(byPlate[res.Plate], res)
		}
	}
	for _, j := range run.Journeys {
		if len(j.Holds) == 0 {
			continue
		}
		r.Checked++
		live := byPlate[j.Plate]
		switch {
		case j.ReservationID == "" && len(live) > 0:
			r.fail("driver %d was refused (%s) after %d attempts, yet %s has a live reservation %s (%s)",
				j.Driver, j.HoldCode, len(j.Holds), j.Plate, short(live[0].ID), live[0].Status)
		case len(live) > 1:
			r.fail("driver %d made %d attempts with one key and %s has %d live reservations", j.Driver, len(j.Holds), j.Plate, len(live))
		case len(live) == 1 && live[0].ID != j.ReservationID:
			r.fail("driver %d was given %s but the live reservation of %s is %s", j.Driver, short(j.ReservationID), j.Plate, short(live[0].ID))
		}
	}
	return r.done()
}

// ExitNeverTraps: every car that got in and came to an exit got out.
func ExitNeverTraps(run *sim.Run) Result {
	r := Result{Name: "exit_never_traps", Title: "no car that got in was kept from leaving",
		Source: "simulator: reads at the exits and their answers"}
	tried := map[int]bool{}
	for _, rd := range run.Reads {
		if rd.Direction == protocol.DirectionExit {
			tried[rd.Driver] = true
		}
	}
	for _, j := range run.Journeys {
		if !j.Entered() || !tried[j.Driver] {
			continue
		}
		r.Checked++
		if j.ExitedAt.IsZero() {
			r.fail("driver %d (%s) got in but was not let out (last exit answer: %s)", j.Driver, j.Plate, lastExit(run, j.Driver))
		}
	}
	return r.done()
}

func lastExit(run *sim.Run, driver int) string {
	for i := len(run.Reads) - 1; i >= 0; i-- {
		rd := run.Reads[i]
		if rd.Driver == driver && rd.Direction == protocol.DirectionExit {
			if rd.Err != "" {
				return "error " + rd.Err
			}
			return rd.Decision + "/" + rd.Reason
		}
	}
	return "none"
}
