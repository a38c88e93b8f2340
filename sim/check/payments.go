package check

import (
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// paidSessions are the checkout sessions that took money.
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
	// Checked counts the late payments, the check's subject: a run with none
	// has nothing to check, however many payments were honoured.
	late := map[string]bool{}
	exts := extensions(run)
	for _, p := range paidSessions(run) {
		paidIntents[p.PaymentIntentID] = true
		n := len(refunds[p.PaymentIntentID])
		res, ok := byID[p.ReservationID]
		switch {
		case !ok:
			late[p.ReservationID] = true
			if n != 1 {
				r.fail("session %s paid for unknown reservation %s: %d refunds, want 1", short(p.SessionID), short(p.ReservationID), n)
			}
		case res.Status == protocol.StatusCancelled && res.PaymentIntentID == p.PaymentIntentID:
			// A driver's cancellation: refunds_in_policy judges its refund.
		case exts[res.ID] != "" && !honoured(res.Status):
			// An extension paid too late is refunded once and stays
			// EXPIRED (or CANCELLED with its booking): it never was a
			// reservation of its own.
			late[res.ID] = true
			if n != 1 {
				r.fail("extension %s (%s) was paid after its hold ended: %d refunds, want exactly 1", short(res.ID), res.Status, n)
			}
		case honoured(res.Status):
			if n != 0 {
				r.fail("reservation %s is %s yet its payment was refunded %d times", short(res.ID), res.Status, n)
			}
		default:
			late[res.ID] = true
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
		late[j.ReservationID] = true
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
	r.Checked = len(late)
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
	// An extension's payment is for its booking's entry.
	for ext, parent := range extensions(run) {
		opened[ext] = opened[parent]
		journeys[ext] = journeys[parent]
	}
	grace := run.Config.EarlyGrace
	cutOff := cutOffUntil(run)
	cameInWindow := map[int]bool{}
	for _, rd := range run.Reads {
		if rd.Direction != protocol.DirectionEntry {
			continue
		}
		j := findJourney(run, rd.Driver)
		if j == nil || j.StartsAt.IsZero() || rd.SentAt.Before(cutOff[j.ReservationID]) {
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

// CutCatchUp is how long after its uplink returns an edge may take to
// learn of the bookings confirmed while it was cut off: a reconnect and
// a catch-up, which take well under a second on this machine.
const CutCatchUp = 5 * time.Second

// cutOffUntil returns, for each booking that could not have reached its
// lot's gate because the simulator had cut the lot's uplink (edge_cut,
// edge_disk_full), until when it could not: when the edge applied its
// confirmation. That is a booking whose confirmation had not reached the
// edge when a cut began, was made before the cut ended, and reached the
// edge within CutCatchUp of the link's return; a refusal before then is
// the cut's, not the system's. A booking held back longer, or held back
// with no cut (a relay that stalls, say), stays the system's to answer
// for.
func cutOffUntil(run *sim.Run) map[string]time.Time {
	var cuts []sim.Fault
	for _, f := range run.Faults {
		if f.Kind == "edge_cut" || f.Kind == "edge_disk_full" {
			cuts = append(cuts, f)
		}
	}
	out := map[string]time.Time{}
	if len(cuts) == 0 {
		return out
	}
	samples := map[string][]sim.SeqSample{}
	for _, x := range run.EdgeSeqs {
		samples[x.LotID] = append(samples[x.LotID], x)
	}
	for _, c := range sortedChanges(run) {
		if c.Status != protocol.StatusConfirmed || !out[c.ReservationID].IsZero() {
			continue
		}
		var arrived time.Time
		for _, x := range samples[c.LotID] {
			if x.Seq >= c.Seq && (arrived.IsZero() || x.At.Before(arrived)) {
				arrived = x.At
			}
		}
		if arrived.IsZero() {
			continue // never arrived: changes_reached_edges says so
		}
		name := lotName(run, c.LotID)
		for _, f := range cuts {
			if f.Target == name && f.At.Before(arrived) && c.CreatedAt.Before(f.Until) && !arrived.After(f.Until.Add(CutCatchUp)) {
				out[c.ReservationID] = arrived
			}
		}
	}
	return out
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
	exts := extensions(run)
	for i := range run.Reservations {
		res := &run.Reservations[i]
		if Live(res) && exts[res.ID] == "" { // an extension is its booking's, not a second one
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
