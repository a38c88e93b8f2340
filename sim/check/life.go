package check

import (
	"sort"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// extensions maps each extension's own reservation row to the reservation
// it extends: as the store links them (extends_id), and as the drivers who
// bought them were told, which also covers a run whose rows were not read.
func extensions(run *sim.Run) map[string]string {
	m := map[string]string{}
	for _, j := range run.Journeys {
		if j.Extension != nil && j.Extension.ID != "" && j.ReservationID != "" {
			m[j.Extension.ID] = j.ReservationID
		}
	}
	for _, r := range run.Reservations {
		if r.ExtendsID != "" {
			m[r.ID] = r.ExtendsID
		}
	}
	return m
}

// PolicySlack is how close to a policy's deadline a request may be sent and
// still be judged: the cloud decides at some moment between sending and
// answer, so one sent nearer than this to the deadline is not held against
// either side.
const PolicySlack = 250 * time.Millisecond

// RefundsInPolicy: every refund is for a payment the cloud could not honour
// (a late payment, which late_payment_refunded_once judges) or for a
// cancellation the driver asked for within the lot's free cancellation; a
// cancellation asked for after it was refused (409 not_cancellable) and
// refunded nothing; one within it of a paid booking was refunded; and no
// payment was refunded more than once.
func RefundsInPolicy(run *sim.Run) Result {
	r := Result{Name: "refunds_in_policy", Title: "no refund outside policy, each refund once",
		Source: "stripe stand-in: refunds, sessions; postgres: reservations; simulator: cancel requests and answers"}
	byID := map[string]*sim.Reservation{}
	for i := range run.Reservations {
		byID[run.Reservations[i].ID] = &run.Reservations[i]
	}
	sessionOf := map[string]sim.StripePayment{} // by payment intent
	for _, p := range paidSessions(run) {
		sessionOf[p.PaymentIntentID] = p
	}
	lots := map[string]sim.Lot{}
	for _, l := range run.Lots {
		lots[l.ID] = l
	}
	cancels := map[string]*sim.Journey{} // reservation id → the journey that cancelled it
	for i := range run.Journeys {
		if j := &run.Journeys[i]; j.Cancel != nil && j.ReservationID != "" {
			cancels[j.ReservationID] = j
		}
	}
	exts := extensions(run)
	refunds := refundsByIntent(run)
	intents := make([]string, 0, len(refunds))
	for pi := range refunds {
		intents = append(intents, pi)
	}
	sort.Strings(intents)
	for _, pi := range intents {
		rs := refunds[pi]
		r.Checked++
		if len(rs) > 1 {
			r.fail("payment %s was refunded %d times", pi, len(rs))
		}
		sess, ok := sessionOf[pi]
		if !ok {
			continue // a refund of nothing: late_payment_refunded_once says so
		}
		resID := sess.ReservationID
		if parent, ok := exts[resID]; ok {
			if res := byID[resID]; res != nil && honoured(res.Status) {
				// A merged extension is refunded only with its booking.
				if pres := byID[parent]; pres == nil || pres.Status != protocol.StatusCancelled {
					r.fail("extension %s of %s is %s, yet its payment was refunded", short(resID), short(parent), res.Status)
				}
			}
			continue
		}
		res := byID[resID]
		if res == nil || res.Status != protocol.StatusCancelled {
			continue // late payments and the like: not a cancellation's refund
		}
		j := cancels[res.ID]
		switch {
		case j == nil:
			r.fail("reservation %s is CANCELLED and refunded, but no driver asked to cancel it", short(res.ID))
		case j.Cancel.Status != 200:
			r.fail("driver %d's cancel of %s was answered %d %s, yet the booking was refunded",
				j.Driver, short(res.ID), j.Cancel.Status, j.Cancel.Code)
		default:
			deadline := res.StartsAt.Add(-lots[res.LotID].FreeCancellation)
			if j.Cancel.At.After(deadline.Add(PolicySlack)) {
				r.fail("driver %d cancelled %s at %s, %s after the free cancellation ended, and was refunded",
					j.Driver, short(res.ID), hm(j.Cancel.At), j.Cancel.At.Sub(deadline).Round(time.Millisecond))
			}
		}
	}
	// The answers the drivers got, against the policy.
	for _, j := range run.Journeys {
		c := j.Cancel
		if c == nil || c.Status == 0 || j.StartsAt.IsZero() {
			continue
		}
		r.Checked++
		res := byID[j.ReservationID]
		if res == nil {
			r.fail("driver %d cancelled %s, which is not in the database", j.Driver, short(j.ReservationID))
			continue
		}
		deadline := res.StartsAt.Add(-lots[res.LotID].FreeCancellation)
		sentIn := c.At.Add(c.RTT).Before(deadline.Add(-PolicySlack))
		sentOut := c.At.After(deadline.Add(PolicySlack))
		paid := len(refunds[res.PaymentIntentID])
		switch {
		case c.Status == 200 && sentOut:
			r.fail("driver %d's cancel of %s, %s after the free cancellation ended, was accepted (want 409 not_cancellable)",
				j.Driver, short(res.ID), c.At.Sub(deadline).Round(time.Millisecond))
		case c.Status == 409 && c.Code == "not_cancellable" && sentIn:
			r.fail("driver %d's cancel of %s within the free cancellation was refused", j.Driver, short(res.ID))
		case c.Status == 200 && res.Status != protocol.StatusCancelled:
			r.fail("driver %d's cancel of %s was accepted but it is %s", j.Driver, short(res.ID), res.Status)
		case c.Status == 200 && res.PaymentIntentID != "" && paid != 1:
			r.fail("driver %d cancelled paid booking %s within policy: %d refunds, want 1", j.Driver, short(res.ID), paid)
		case c.Status != 200 && paid != 0 && res.Status != protocol.StatusRefunded:
			r.fail("driver %d's cancel of %s was refused (%d %s), yet its payment was refunded %d times",
				j.Driver, short(res.ID), c.Status, c.Code, paid)
		}
	}
	return r.done()
}

// exitsOf are the exits that opened for each reservation, in order.
func exitsOf(run *sim.Run) map[string][]time.Time {
	dirs := gateDirections(run)
	m := map[string][]time.Time{}
	for _, ge := range run.GateEvents {
		dir := ge.Direction
		if dir == "" {
			dir = dirs[ge.LotID+"/"+ge.GateID]
		}
		if dir == protocol.DirectionExit && ge.Decision == protocol.DecisionOpen && ge.ReservationID != "" {
			m[ge.ReservationID] = append(m[ge.ReservationID], ge.OccurredAt)
		}
	}
	for _, ts := range m {
		sort.Slice(ts, func(a, b int) bool { return ts[a].Before(ts[b]) })
	}
	return m
}

// overstayPrice is the lot's rate per started 15 minutes, a quarter of the
// hourly rate each, rounded up to the minor unit (cloud.OverstayPrice).
func overstayPrice(rate int64, minutes int) int64 {
	if minutes <= 0 || rate <= 0 {
		return 0
	}
	quarters := int64((minutes + 14) / 15)
	return (rate*quarters + 3) / 4
}

// OverstayPricedOnce: every reservation whose car left after ends_at plus
// the lot's exit grace owes exactly one overstay, of the minutes past
// ends_at at the lot's rate per started 15 minutes, and every Checkout
// Session opened for it asks that same amount, at most one of them was paid
// and a paid one shows the overstay paid; a car that left in time owes
// nothing and got no session.
func OverstayPricedOnce(run *sim.Run) Result {
	r := Result{Name: "overstay_priced_once", Title: "every overstay priced exactly once",
		Source: "postgres: gate_events, reservations; cloud API: overstay; stripe stand-in: sessions"}
	lots := map[string]sim.Lot{}
	for _, l := range run.Lots {
		lots[l.ID] = l
	}
	sessions := map[string][]sim.StripePayment{} // by reservation, its own session excluded
	byID := map[string]*sim.Reservation{}
	for i := range run.Reservations {
		byID[run.Reservations[i].ID] = &run.Reservations[i]
	}
	for _, p := range run.Payments {
		if res := byID[p.ReservationID]; res != nil && p.SessionID != res.SessionID {
			sessions[p.ReservationID] = append(sessions[p.ReservationID], p)
		}
	}
	exits := exitsOf(run)
	paidBy := map[string]string{} // reservation → the overstay session its driver paid
	for _, j := range run.Journeys {
		if j.OverstaySession != "" {
			paidBy[j.ReservationID] = j.OverstaySession
		}
	}
	for i := range run.Reservations {
		res := &run.Reservations[i]
		ts := exits[res.ID]
		if len(ts) == 0 {
			if res.Overstay != nil {
				r.fail("reservation %s never left, yet owes an overstay of %d minutes", short(res.ID), res.Overstay.Minutes)
			}
			continue
		}
		r.Checked++
		lot, ok := lots[res.LotID]
		grace := lot.ExitGrace
		if !ok {
			grace = run.Config.ExitGrace
		}
		limit := res.EndsAt.Add(grace)
		var late time.Time
		for _, t := range ts {
			if t.After(limit) {
				late = t
				break
			}
		}
		sess := sessions[res.ID]
		if late.IsZero() {
			if ts[len(ts)-1].After(limit.Add(-PolicySlack)) {
				continue // at the edge of the grace: either answer is right
			}
			if res.Overstay != nil || len(sess) > 0 {
				r.fail("reservation %s left in time (%s, ends %s) yet was charged an overstay (%d sessions)",
					short(res.ID), hm(ts[len(ts)-1]), hm(res.EndsAt), len(sess))
			}
			continue
		}
		if late.Before(limit.Add(PolicySlack)) && res.Overstay == nil {
			continue
		}
		o := res.Overstay
		if o == nil {
			r.fail("reservation %s left %s after its end (grace %s) but owes no overstay",
				short(res.ID), late.Sub(res.EndsAt).Round(time.Millisecond), grace)
			continue
		}
		minutes := int((late.Sub(res.EndsAt) + time.Minute - 1) / time.Minute)
		if o.Minutes != minutes {
			r.fail("reservation %s's overstay is %d minutes, want %d", short(res.ID), o.Minutes, minutes)
		}
		if want := overstayPrice(lot.HourlyRate, o.Minutes); ok && lot.HourlyRate > 0 && o.Amount != want {
			r.fail("reservation %s's overstay of %d minutes costs %d, want %d", short(res.ID), o.Minutes, o.Amount, want)
		}
		if o.Amount > 0 && len(sess) == 0 {
			r.fail("reservation %s owes an overstay of %d but no session was opened for it", short(res.ID), o.Amount)
		}
		paid := 0
		for _, p := range sess {
			if p.Amount != o.Amount {
				r.fail("reservation %s's overstay session %s asks %d, the overstay is %d", short(res.ID), short(p.SessionID), p.Amount, o.Amount)
			}
			if p.Paid() {
				paid++
			}
		}
		switch {
		case paid > 1:
			r.fail("reservation %s's overstay was paid %d times", short(res.ID), paid)
		case paid == 1 && o.Status != "paid":
			r.fail("reservation %s's overstay session was paid but the overstay is %s", short(res.ID), o.Status)
		case paid == 0 && paidBy[res.ID] != "":
			r.fail("driver paid overstay session %s of %s, which the stand-in does not show paid", short(paidBy[res.ID]), short(res.ID))
		}
	}
	return r.done()
}

// CodeNeverOpensCancelled: an access code shown at a gate never opened it
// for a cancelled booking once the cancellation had reached that lot's
// edge (its applied sequence number, as sampled through the run, at or
// past the cancellation's).
func CodeNeverOpensCancelled(run *sim.Run) Result {
	r := Result{Name: "code_never_opens_cancelled", Title: "a code never opens for a cancelled booking once synced",
		Source: "simulator: access codes shown; postgres: outbox; edge /metrics: applied sequence"}
	cancelSeq := map[string]int64{} // reservation → seq of its cancellation
	for _, c := range run.Changes {
		// A silent cancellation was of a hold no edge had, and that
		// never had a code that opens.
		if c.Status == protocol.StatusCancelled && c.Silent == 0 {
			if s, ok := cancelSeq[c.ReservationID]; !ok || c.Seq < s {
				cancelSeq[c.ReservationID] = c.Seq
			}
		}
	}
	samples := map[string][]sim.SeqSample{}
	for _, s := range run.EdgeSeqs {
		samples[s.LotID] = append(samples[s.LotID], s)
	}
	for _, ss := range samples {
		sort.Slice(ss, func(a, b int) bool { return ss[a].At.Before(ss[b].At) })
	}
	// synced is when the lot's edge was first seen at or past seq.
	synced := func(lot string, seq int64) (time.Time, bool) {
		for _, s := range samples[lot] {
			if s.Seq >= seq {
				return s.At, true
			}
		}
		return time.Time{}, false
	}
	resOf := map[int]string{}
	for _, j := range run.Journeys {
		resOf[j.Driver] = j.ReservationID
	}
	for _, rd := range run.Reads {
		if !rd.Code || rd.Decision == "" {
			continue
		}
		r.Checked++
		id := rd.ReservationID
		if id == "" {
			id = resOf[rd.Driver]
		}
		seq, ok := cancelSeq[id]
		if !ok || !rd.Open() {
			continue
		}
		if at, ok := synced(rd.LotID, seq); ok && !rd.SentAt.Before(at) {
			r.fail("driver %d's code opened %s at %s for cancelled %s, whose cancellation (seq %d) the edge had applied by %s",
				rd.Driver, rd.GateID, hm(rd.SentAt), short(id), seq, hm(at))
		}
	}
	return r.done()
}
