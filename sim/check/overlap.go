package check

import (
	"sort"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// NoOverlap: no two active reservations of one spot overlap — now, in the
// reservations table, and at any point of the run, by replaying each lot's
// history in order (every status change is logged in the transaction that
// made it, in the change log or, when no edge needs it, as a silent change
// placed after the log's last change, so the two are the history of who
// held a spot).
func NoOverlap(run *sim.Run) Result {
	r := Result{Name: "no_overlap", Title: "no two active reservations of a spot overlap",
		Source: "postgres: reservations (now); lot_history: outbox, silent_changes and the holds' rows (history)"}
	bySpot := map[int64][]*sim.Reservation{}
	byID := make(map[string]*sim.Reservation, len(run.Reservations))
	for i := range run.Reservations {
		byID[run.Reservations[i].ID] = &run.Reservations[i]
	}
	// A booking's window is as far as its paid extensions reach, whether
	// or not its own row moved: an extension sold over another booking is
	// an overlap even if the merge never happened.
	extended := map[string]sim.Reservation{}
	for extID, parent := range extensions(run) {
		e, p := byID[extID], byID[parent]
		if e == nil || p == nil || e.Status != protocol.StatusCompleted || e.SpotID != p.SpotID {
			continue
		}
		w, ok := extended[parent]
		if !ok {
			w = *p
		}
		if e.EndsAt.After(w.EndsAt) {
			w.EndsAt = e.EndsAt
		}
		extended[parent] = w
	}
	// The history judges each change by the windows as they were then: a
	// booking's first end until the change that merged its extension, so a hold
	// that came and went over the interval before it was sold is no
	// overlap.
	before := map[string]sim.Reservation{}
	mergedAt := map[string]time.Time{}
	paidAt := map[string]time.Time{}
	for _, j := range run.Journeys {
		if j.Extension != nil && j.Extension.ID != "" {
			paidAt[j.Extension.ID] = j.Extension.PaidAt
		}
	}
	changes := sortedChanges(run)
	for extID, parent := range extensions(run) {
		e, ok := extended[parent]
		if !ok || paidAt[extID].IsZero() {
			continue
		}
		b := e
		b.EndsAt = byID[extID].StartsAt
		before[parent] = b
		for _, c := range changes {
			// The change log's own window names the merge: the first live
			// change of the booking that reaches the extension's end (a log
			// read without windows falls back to the first after payment).
			merged := !c.EndsAt.IsZero() && !c.EndsAt.Before(byID[extID].EndsAt)
			if c.EndsAt.IsZero() {
				merged = !c.CreatedAt.Before(paidAt[extID])
			}
			if c.ReservationID == parent && c.Status.Active() && merged {
				mergedAt[parent] = c.CreatedAt
				break
			}
		}
	}
	for id, w := range extended {
		byID[id] = &w
	}
	then := func(id string, c sim.Change) *sim.Reservation {
		if b, ok := before[id]; ok && !c.CreatedAt.IsZero() {
			if m, ok := mergedAt[id]; ok && c.CreatedAt.Before(m) {
				return &b
			}
		}
		return byID[id]
	}
	for i := range run.Reservations {
		res := byID[run.Reservations[i].ID]
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
		// A reservation logged again while live may have moved its end (an
		// extension merged): its window is checked again.
		for other := range set {
			if other == res.ID {
				continue
			}
			o := then(other, c)
			key := min(o.ID, res.ID) + max(o.ID, res.ID)
			if overlaps(o, then(res.ID, c)) && !seen[key] {
				seen[key] = true
				r.fail("spot %d at lot seq %d: %s became %s while %s was active, and their windows overlap",
					res.SpotID, c.Seq, short(res.ID), c.Status, short(o.ID))
			}
		}
		set[res.ID] = true
	}
	return r.done()
}

// sortedChanges is every lot's history, by lot and sequence, each silent
// change after the log's change it followed.
func sortedChanges(run *sim.Run) []sim.Change {
	changes := append([]sim.Change(nil), run.Changes...)
	sort.Slice(changes, func(i, j int) bool {
		a, b := changes[i], changes[j]
		if a.LotID != b.LotID {
			return a.LotID < b.LotID
		}
		if a.Seq != b.Seq {
			return a.Seq < b.Seq
		}
		return a.Silent < b.Silent
	})
	return changes
}
