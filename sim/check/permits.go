package check

import (
	"sort"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// Permits (issue 15): the permit holders, the revoked ones, and the
// operator's presence resets, judged from the cloud's permits and change
// log and the edges' applied sequence numbers as sampled through the run.

// edgeSynced returns a function telling when a lot's edge was first seen
// at or past seq.
func edgeSynced(run *sim.Run) func(lot string, seq int64) (time.Time, bool) {
	samples := map[string][]sim.SeqSample{}
	for _, s := range run.EdgeSeqs {
		samples[s.LotID] = append(samples[s.LotID], s)
	}
	for _, ss := range samples {
		sort.Slice(ss, func(a, b int) bool { return ss[a].At.Before(ss[b].At) })
	}
	return func(lot string, seq int64) (time.Time, bool) {
		for _, s := range samples[lot] {
			if s.Seq >= seq {
				return s.At, true
			}
		}
		return time.Time{}, false
	}
}

// permitEntry judges an entry opened with reason permit: the car's plate
// holds a permit of the lot valid at the moment of entry and not revoked
// before it (a revoked permit may open until the edge has synced the
// revocation; revoked_permit_never_opens judges after). It returns the
// violation, or "".
func permitEntry(run *sim.Run, e entry) string {
	plate := e.plate
	for _, p := range run.Permits {
		if p.LotID != e.lotID || (p.Plate != plate && p.Plate != e.edgePlate) {
			continue
		}
		if e.atMax.Before(p.ValidFrom) || !e.at.Before(p.ValidUntil) {
			continue
		}
		if !p.RevokedAt.IsZero() && p.RevokedAt.Before(e.at) {
			if at, ok := edgeSynced(run)(p.LotID, p.RevokeSeq); ok && !e.at.Before(at) {
				continue
			}
		}
		return ""
	}
	return "let in at " + hm(e.at) + " on a permit, but holds no valid permit of the lot"
}

// PermitHoldersAdmitted: a permit holder inside its permit's validity was
// never refused at an entry but for being inside already (anti-passback)
// or for the camera (low confidence, an ambiguous read); a refusal as
// unknown (no_reservation) counts only once the lot's edge had applied the
// permit.
func PermitHoldersAdmitted(run *sim.Run) Result {
	r := Result{Name: "permit_holders_admitted", Title: "a permit holder is refused only while inside",
		Source: "simulator: reads of permit holders; postgres: permits, outbox; edges: applied sequence"}
	synced := edgeSynced(run)
	permitOf := map[int]*sim.Permit{}
	for _, j := range run.Journeys {
		if j.Plan.Arrival != sim.ArrivalPermit || j.Permit == nil || j.Permit.ID == "" {
			continue
		}
		for i := range run.Permits {
			if run.Permits[i].ID == j.Permit.ID {
				permitOf[j.Driver] = &run.Permits[i]
			}
		}
		if permitOf[j.Driver] == nil {
			r.fail("driver %d was told its permit %s was made, but the cloud has none", j.Driver, short(j.Permit.ID))
		}
	}
	for _, rd := range run.Reads {
		p := permitOf[rd.Driver]
		if p == nil || rd.Direction != protocol.DirectionEntry || rd.Decision == "" || rd.Code {
			continue
		}
		r.Checked++
		if rd.Open() {
			continue
		}
		switch rd.Reason {
		case protocol.ReasonAlreadyInside, protocol.ReasonLowConfidence, protocol.ReasonAmbiguous:
			continue
		case protocol.ReasonNoReservation:
			if at, ok := synced(rd.LotID, p.Seq); !ok || rd.SentAt.Before(at) {
				continue // the edge did not have the permit yet
			}
		}
		r.fail("permit holder %d (%s) refused %s at %s, its permit valid %s to %s", rd.Driver, rd.Plate, rd.Reason,
			hm(rd.SentAt), hm(p.ValidFrom), hm(p.ValidUntil))
	}
	return r.done()
}

// RevokedPermitNeverOpens: once a lot's edge had applied a permit's
// revocation, no entry opened for that plate on a permit.
func RevokedPermitNeverOpens(run *sim.Run) Result {
	r := Result{Name: "revoked_permit_never_opens", Title: "a revoked permit never opens once synced",
		Source: "postgres: permits, outbox, gate_events; simulator: reads; edges: applied sequence"}
	synced := edgeSynced(run)
	es := entries(run)
	for _, p := range run.Permits {
		if p.RevokeSeq == 0 {
			continue
		}
		r.Checked++
		at, ok := synced(p.LotID, p.RevokeSeq)
		if !ok {
			continue
		}
		for _, e := range es {
			if e.open && e.reason == protocol.ReasonPermit && e.lotID == p.LotID &&
				(e.plate == p.Plate || e.edgePlate == p.Plate) && !e.at.Before(at) {
				r.fail("plate %s let in on a permit at %s; its permit %s was revoked (seq %d) and the edge had it by %s",
					p.Plate, hm(e.at), short(p.ID), p.RevokeSeq, hm(at))
			}
		}
	}
	// The revoked holders who came did so after the sync: each was refused.
	for _, j := range run.Journeys {
		if j.Plan.Arrival == sim.ArrivalRevoked && j.Permit != nil && j.Permit.Tried {
			r.Checked++
		}
	}
	return r.done()
}

// PresenceResetApplied: a permit holder whose exit read was missed was
// refused already_inside before the operator's presence reset, and let in
// once its lot's edge had applied the reset — an offline edge after its
// uplink came back.
func PresenceResetApplied(run *sim.Run) Result {
	r := Result{Name: "presence_reset_applied", Title: "an operator's presence reset reaches the edge and lets the car in",
		Source: "simulator: reads, the operator's resets; edge: GET /v1/gates sync_seq"}
	for _, j := range run.Journeys {
		if j.Permit == nil || j.Permit.Reset == nil {
			continue
		}
		rs := j.Permit.Reset
		r.Checked++
		switch {
		case rs.DeniedBefore != protocol.ReasonAlreadyInside:
			r.fail("driver %d (%s), inside as far as the edge knew, was answered %q at the entry, not already_inside",
				j.Driver, j.Plate, rs.DeniedBefore)
		case rs.Status != 202 || rs.Seq == 0:
			r.fail("driver %d's presence reset was answered %d", j.Driver, rs.Status)
		case rs.Synced.IsZero():
			r.fail("driver %d's presence reset (seq %d) never reached the edge", j.Driver, rs.Seq)
		case rs.After != protocol.ReasonPermit:
			r.fail("driver %d was answered %q after its presence reset reached the edge, want an open on its permit", j.Driver, rs.After)
		}
	}
	return r.done()
}
