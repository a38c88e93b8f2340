package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// span is the time from the first to the last of ts, at least a second.
type span struct{ first, last time.Time }

func (p *span) add(t time.Time) {
	if p.first.IsZero() || t.Before(p.first) {
		p.first = t
	}
	if t.After(p.last) {
		p.last = t
	}
}

func (p *span) seconds() float64 { return max(1, p.last.Sub(p.first).Seconds()) }

// throughput is each rate over the time that kind of work was going on, so
// the tail of the last cars' stays does not dilute the booking rate.
func throughput(run *sim.Run, h Holds) *Load {
	var holds, reads, entries span
	nEntries := 0
	for _, j := range run.Journeys {
		for _, a := range j.Holds {
			holds.add(a.At)
		}
	}
	for _, rd := range run.Reads {
		reads.add(rd.SentAt)
		if rd.Direction == protocol.DirectionEntry && rd.Open() {
			entries.add(rd.SentAt)
			nEntries++
		}
	}
	return &Load{Seconds: run.Ended.Sub(run.Started).Seconds(),
		HoldsPerSec: float64(h.Created) / holds.seconds(), ReadsPerSec: float64(len(run.Reads)) / reads.seconds(),
		EntriesPerS: float64(nEntries) / entries.seconds(), HoldRequests: h.Requests}
}

func (s *Summary) journeys(run *sim.Run) {
	j := &s.Journeys
	j.Drivers = len(run.Journeys)
	plans := map[string]int{}
	earlyDeny := map[int]bool{}
	for _, rd := range run.Reads {
		if rd.Direction == protocol.DirectionEntry && rd.Reason == protocol.ReasonTooEarly {
			earlyDeny[rd.Driver] = true
		}
	}
	for _, jn := range run.Journeys {
		plan := string(jn.Plan.Arrival)
		if jn.Plan.Payment != "" {
			plan += "/" + string(jn.Plan.Payment)
		}
		if jn.Plan.Life != sim.LifeNone {
			plan += "/" + string(jn.Plan.Life)
		}
		plans[plan]++
		if jn.Permit != nil {
			continue // counted in Life: no booking, no payment
		}
		if jn.Plan.Arrival == sim.ArrivalIntruder {
			j.Intruders++
			if jn.Entered() {
				j.IntrudersIn++
			}
			continue
		}
		if jn.ReservationID != "" {
			j.Booked++
		} else {
			j.HoldRefused++
		}
		switch {
		case jn.Paid():
			j.Paid++
			if !jn.WebhookAt.IsZero() && jn.WebhookAt.After(jn.HoldExpiresAt) {
				j.PaidLate++
			}
		case jn.PayErr != "":
			j.PayRefused++
		case jn.ReservationID != "":
			j.PayAbandoned++
		}
		if jn.Entered() {
			j.Entered++
		}
		if !jn.ExitedAt.IsZero() {
			j.Exited++
			end := jn.EndsAt
			if jn.Extension.Extended() {
				end = jn.Extension.EndsAt
			}
			if !end.IsZero() && jn.ExitedAt.After(end.Add(run.Config.ExitGrace)) {
				j.Overstayed++
			}
		}
		if earlyDeny[jn.Driver] {
			j.TooEarly++
		}
		if jn.Paid() && jn.Plan.Arrival == sim.ArrivalNoShow {
			j.NoShow++
		}
		if jn.Plan.Arrival == sim.ArrivalLate && jn.Paid() {
			j.CameLate++
		}
		if asPlanned(&jn) {
			j.Completed++
		}
	}
	j.Plans = counts(plans)
	j.Life = life(run)
}

// life counts the lifecycle journeys from what the drivers did and what
// the cloud and the stand-in kept.
func life(run *sim.Run) Life {
	var l Life
	refunded := map[string]bool{}
	for _, rf := range run.Refunds {
		refunded[rf.PaymentIntentID] = true
	}
	byID := map[string]*sim.Reservation{}
	for i := range run.Reservations {
		res := &run.Reservations[i]
		byID[res.ID] = res
		if res.Overstay != nil {
			l.Overstays++
			if res.Overstay.Status == "paid" {
				l.OverstaysPaid++
			}
		}
	}
	codeIn := map[int]bool{}
	codeOpen := map[int]bool{}
	refusals := map[string]int{}
	for _, rd := range run.Reads {
		if rd.Code && rd.Decision != "" {
			codeIn[rd.Driver] = true
			codeOpen[rd.Driver] = codeOpen[rd.Driver] || rd.Open()
		}
	}
	for _, jn := range run.Journeys {
		if c := jn.Cancel; c != nil {
			if c.InPolicy {
				l.CancelIn++
				if res := byID[jn.ReservationID]; c.Status == 200 && res != nil && refunded[res.PaymentIntentID] {
					l.CancelInRefunded++
				}
			} else {
				l.CancelOut++
				if c.Status == 409 && c.Code == "not_cancellable" {
					l.CancelOutRefused++
				}
			}
			if c.CodeTried && codeIn[jn.Driver] {
				l.CodeCancelled++
				if !codeOpen[jn.Driver] {
					l.CodeCancelledNo++
				}
			}
		}
		if e := jn.Extension; e != nil {
			l.ExtendAsked++
			if e.Extended() {
				l.Extended++
			}
			if e.Status/100 == 4 {
				l.ExtendRefused++
				refusals[fmt.Sprintf("%d %s", e.Status, e.Code)]++
			}
		}
		if p := jn.Permit; p != nil && p.ID != "" {
			switch jn.Plan.Arrival {
			case sim.ArrivalRevoked:
				if p.Tried {
					l.Revoked++
					if !jn.Entered() {
						l.RevokedRefused++
					}
				}
			default:
				l.Permits++
				if jn.Entered() {
					l.PermitsIn++
				}
			}
			if rs := p.Reset; rs != nil && rs.Seq != 0 {
				l.Resets++
				if rs.Offline {
					l.ResetsOffline++
				}
				if rs.After == protocol.ReasonPermit {
					l.ResetsIn++
				}
			}
		}
		if jn.Plan.Life == sim.LifeAccessCode && codeIn[jn.Driver] {
			l.CodeShown++
			if codeOpen[jn.Driver] {
				l.CodeShownIn++
			}
		}
	}
	if len(refusals) > 0 {
		l.ExtendRefusals = counts(refusals)
	}
	return l
}

// asPlanned reports whether a booked driver's journey ended as its plan
// says it should: one who pays at once and comes within the window got in
// and out again; any other (late, no-show, unpaid, or paid only after the
// hold ended) was never let in.
func asPlanned(jn *sim.Journey) bool {
	mustEnter := jn.Plan.Payment == sim.PayNow && jn.Plan.Arrival != sim.ArrivalLate && jn.Plan.Arrival != sim.ArrivalNoShow &&
		jn.Plan.Life != sim.LifeCancelIn && jn.Plan.Life != sim.LifeCancelOut
	if mustEnter {
		return jn.Entered() && !jn.ExitedAt.IsZero()
	}
	return !jn.Entered()
}

func (s *Summary) holds(run *sim.Run) {
	h := &s.Holds
	out := map[string]int{}
	var lat []time.Duration
	for _, jn := range run.Journeys {
		for k, a := range jn.Holds {
			if a.Status == 0 && k+1 < len(jn.Holds) {
				h.Retried++ // no answer, then the same key again
				break
			}
		}
		for _, a := range jn.Holds {
			h.Requests++
			if a.Replayed {
				h.Replayed++
			}
			key := "timeout/error"
			if a.Status != 0 {
				key = strconv.Itoa(a.Status)
				if a.Code != "" {
					key += " " + a.Code
				}
				lat = append(lat, a.Latency)
			}
			out[key]++
		}
		if jn.ReservationID != "" {
			h.Created++
		}
	}
	h.Outcomes = counts(out)
	h.Latency = NewStats(lat)
	given := map[string]bool{}
	plates := map[string]bool{}
	for _, jn := range run.Journeys {
		given[jn.ReservationID] = true
		plates[jn.Plate] = true
	}
	for _, r := range run.Reservations {
		if plates[r.Plate] && !given[r.ID] {
			h.Orphans++
		}
	}
}

func (s *Summary) decisions(run *sim.Run) {
	m := map[string]int{}
	for _, rd := range run.Reads {
		if rd.Decision == "" {
			if rd.Err == "camera missed" {
				m[rd.Direction+" camera missed"]++
			} else {
				m[rd.Direction+" no answer"]++
			}
			continue
		}
		m[rd.Direction+" "+rd.Decision+" "+rd.Reason]++
		if rd.Offline {
			s.Offline.Decisions++
			if rd.Open() {
				s.Offline.Opens++
			}
		}
	}
	s.Decisions = counts(m)
	for _, ge := range run.GateEvents {
		if ge.Offline {
			s.Offline.Flagged++
		}
	}
}

func (s *Summary) refunds(run *sim.Run) {
	honoured := map[string]bool{}
	for _, r := range run.Reservations {
		switch r.Status {
		case protocol.StatusConfirmed, protocol.StatusCheckedIn, protocol.StatusCompleted:
			honoured[r.ID] = true
		}
	}
	for _, p := range run.Payments {
		if p.Paid() && !honoured[p.ReservationID] {
			s.Refunds.Expected++
		}
	}
	for _, r := range run.Refunds {
		s.Refunds.Count++
		s.Refunds.Amount += r.Amount
	}
	var currencies []string
	for _, l := range run.Lots {
		if l.Currency != "" && !slices.Contains(currencies, l.Currency) {
			currencies = append(currencies, l.Currency)
		}
	}
	s.Refunds.Currency = strings.Join(currencies, ",")
}
