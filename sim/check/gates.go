package check

import (
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

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
	reason    string
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
			at: rd.SentAt, atMax: rd.SentAt.Add(rd.RTT), open: rd.Open(), reason: rd.Reason, fromSim: true, driver: rd.Driver}
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
			if ge.Reason != "" {
				out[i].reason = ge.Reason
			}
			continue
		}
		out = append(out, entry{eventID: ge.EventID, lotID: ge.LotID, plate: ge.Plate, edgePlate: ge.Plate,
			resID: ge.ReservationID, at: ge.OccurredAt, atMax: ge.OccurredAt, open: ge.Decision == protocol.DecisionOpen,
			reason: ge.Reason, driver: -1})
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
// included — or, opened with reason permit, for a car whose own permit at
// that lot was valid then (permitEntry). Openings come from the cloud's gate_events and the simulator's
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
		if e.reason == protocol.ReasonPermit && e.resID == "" {
			if v := permitEntry(run, e); v != "" {
				r.fail("%s %s", who, v)
			}
			continue
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
