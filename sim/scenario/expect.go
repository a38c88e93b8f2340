package scenario

import (
	"fmt"
	"net/http"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
)

// Expectation is what a scenario must show beyond the invariants, so that a
// run which never did what the scenario is about cannot pass: a cut that
// produced no offline decision proves nothing about offline decisions.
type Expectation func(run *sim.Run) check.Result

func result(name, title, source string, checked int, violations ...string) check.Result {
	r := check.Result{Name: "scenario:" + name, Title: title, Source: source, Checked: checked}
	for _, v := range violations {
		if v != "" {
			r.Failed++
			r.Violations = append(r.Violations, v)
		}
	}
	r.Pass = r.Failed == 0
	return r
}

// expectEntered: cars went in and out through the gates.
func expectEntered() Expectation {
	return func(run *sim.Run) check.Result {
		in, out := 0, 0
		for _, j := range run.Journeys {
			if j.Entered() {
				in++
			}
			if !j.ExitedAt.IsZero() {
				out++
			}
		}
		var v string
		if in == 0 || out == 0 {
			v = fmt.Sprintf("%d cars entered and %d left: the gates were never exercised", in, out)
		}
		return result("traffic", "cars went in and out", "simulator: journeys", len(run.Journeys), v)
	}
}

// expectPermits: permit holders came and got in, a revoked permit was
// tried once synced, and a presence reset was sent and reached its edge,
// so the permit invariants had something to judge.
func expectPermits() Expectation {
	return func(run *sim.Run) check.Result {
		holders, in, tried, resets := 0, 0, 0, 0
		for _, j := range run.Journeys {
			p := j.Permit
			if p == nil {
				continue
			}
			switch {
			case j.Plan.Arrival == sim.ArrivalRevoked && p.Tried:
				tried++
			case j.Plan.Arrival == sim.ArrivalPermit && p.ID != "":
				holders++
				if j.Entered() {
					in++
				}
			}
			if p.Reset != nil && !p.Reset.Synced.IsZero() {
				resets++
			}
		}
		var v []string
		if in == 0 {
			v = append(v, fmt.Sprintf("none of %d permit holders got in", holders))
		}
		if tried == 0 {
			v = append(v, "no revoked permit was tried at a synced edge")
		}
		if resets == 0 {
			v = append(v, "no presence reset reached an edge")
		}
		return result("permits", "permit holders came, a revoked permit was tried, a presence reset reached its edge",
			"simulator: journeys", holders+tried+resets, v...)
	}
}

// expectOffline: a cut lot decided without its uplink, and its events say so.
func expectOffline() Expectation {
	return func(run *sim.Run) check.Result {
		decided, flagged := 0, 0
		for _, r := range run.Reads {
			if r.Offline && r.Decision != "" {
				decided++
			}
		}
		for _, e := range run.GateEvents {
			if e.Offline {
				flagged++
			}
		}
		var v []string
		if decided == 0 {
			v = append(v, "no read was decided while an uplink was cut")
		}
		if flagged == 0 {
			v = append(v, "no gate event in the cloud is marked offline")
		}
		return result("offline", "a cut-off edge kept deciding, and said so", "simulator: reads; postgres: gate_events",
			decided, v...)
	}
}

// expectRefunds: some payment did arrive after its hold, and webhooks were
// redelivered, so refund-exactly-once was really tested.
func expectRefunds() Expectation {
	return func(run *sim.Run) check.Result {
		late := 0
		for _, j := range run.Journeys {
			if j.Paid() && !j.WebhookAt.IsZero() && j.WebhookAt.After(j.HoldExpiresAt) {
				late++
			}
		}
		events, deliveries := 0, 0
		for _, w := range run.Webhooks {
			if w.Type == "checkout.session.completed" {
				events++
				deliveries += w.Deliveries
			}
		}
		var v []string
		if late == 0 {
			v = append(v, "no payment reached the cloud after its hold ended")
		}
		if len(run.Refunds) == 0 {
			v = append(v, "no refund was made")
		}
		if deliveries <= events {
			v = append(v, fmt.Sprintf("payment events were not redelivered (%d events, %d deliveries)", events, deliveries))
		}
		return result("late_payments", "late payments happened and their events came more than once",
			"simulator: journeys; stripe stand-in: events, refunds", late, v...)
	}
}

// expectRestarted: the broker restarted and gate events decided after it
// reached the cloud.
func expectRestarted() Expectation {
	return func(run *sim.Run) check.Result {
		var last sim.Fault
		n := 0
		for _, f := range run.Faults {
			if f.Kind == string(FaultBrokerRestart) {
				last, n = f, n+1
			}
		}
		if n == 0 {
			return result("broker_restart", "the broker restarted mid-run", "simulator: faults", 0, "the broker was never restarted")
		}
		after := 0
		for _, e := range run.GateEvents {
			if e.OccurredAt.After(last.Until) {
				after++
			}
		}
		var v string
		if after == 0 {
			v = "no gate event decided after the last restart reached the cloud"
		}
		if last.Detail != "" && last.Detail != "ok" {
			v = "restart failed: " + last.Detail
		}
		return result("broker_restart", "the broker restarted mid-run and sync resumed", "simulator: faults; postgres: gate_events", after, v)
	}
}

// expectExactFill: a hot lot gave exactly as many holds as it has spots for
// the one window everybody wanted, and refused the rest with 409 or 429.
func expectExactFill() Expectation {
	return func(run *sim.Run) check.Result {
		spots := 0
		for _, l := range run.Lots {
			spots += l.Spots
		}
		var v []string
		for _, j := range run.Journeys {
			if j.ReservationID != "" || len(j.Holds) == 0 {
				continue
			}
			last := j.Holds[len(j.Holds)-1]
			if last.Status != http.StatusConflict && last.Status != http.StatusTooManyRequests {
				v = append(v, fmt.Sprintf("driver %d ended with %d %s, not 409 or 429", j.Driver, last.Status, last.Code))
			}
		}
		// Every hold of the one window counts, paid or not: they all hold a spot.
		active := 0
		for _, r := range run.Reservations {
			if r.Status != protocol.StatusExpired && r.Status != protocol.StatusCancelled {
				active++
			}
		}
		// Counted in Postgres, not by drivers told 201: a hold whose answer
		// was lost still holds its spot (idempotent_holds judges that).
		if active != spots {
			v = append(v, fmt.Sprintf("%d holds in Postgres for %d spots", active, spots))
		}
		return result("exact_fill", "exactly as many holds as spots; the rest refused with 409/429",
			"simulator: hold answers; postgres: reservations", len(run.Journeys), v...)
	}
}

// expectReplayed: a lost answer was asked for again and replayed, so the
// idempotency of holds was really exercised.
func expectReplayed() Expectation {
	return func(run *sim.Run) check.Result {
		lost, replayed := 0, 0
		for _, j := range run.Journeys {
			if j.Plan.Network == sim.NetworkLostAnswer {
				lost++
			}
			for _, a := range j.Holds {
				if a.Replayed {
					replayed++
				}
			}
		}
		var v string
		if lost > 0 && replayed == 0 {
			v = fmt.Sprintf("%d answers were lost, none was replayed on the retry", lost)
		}
		return result("replayed", "a retried hold whose answer was lost got it replayed",
			"simulator: hold attempts", lost, v)
	}
}

// expectLifecycle: each driver planned for a lifecycle journey who booked
// and paid did it — got an answer to their cancellation or extension,
// showed their code, paid their overstay —, so a run whose drivers never
// reached the new endpoints cannot pass on invariants with nothing to see.
func expectLifecycle() Expectation {
	return func(run *sim.Run) check.Result {
		var vs []string
		n := 0
		codes := map[int]bool{}
		for _, rd := range run.Reads {
			if rd.Code && rd.Decision != "" {
				codes[rd.Driver] = true
			}
		}
		for _, j := range run.Journeys {
			if j.Plan.Life == sim.LifeNone || !j.Paid() || j.ConfirmedAt.IsZero() {
				continue
			}
			n++
			var v string
			switch j.Plan.Life {
			case sim.LifeCancelIn, sim.LifeCancelOut:
				if j.Cancel == nil || j.Cancel.Status == 0 {
					v = fmt.Sprintf("driver %d (%s) got no answer to a cancellation", j.Driver, j.Plan.Life)
				}
			case sim.LifeExtend:
				if j.Entered() && (j.Extension == nil || j.Extension.Status == 0) {
					v = fmt.Sprintf("driver %d got no answer to an extension", j.Driver)
				}
			case sim.LifeOverstayPay:
				if !j.ExitedAt.IsZero() && j.OverstayPaidAt.IsZero() {
					v = fmt.Sprintf("driver %d left late but found no overstay to pay (last seen %q)", j.Driver, j.OverstayStatus)
				}
			case sim.LifeAccessCode:
				if !codes[j.Driver] {
					v = fmt.Sprintf("driver %d never showed a code (the app had one: %t)", j.Driver, j.AccessCode != "")
				}
			}
			if v != "" {
				vs = append(vs, v)
			}
		}
		return result("lifecycle", "drivers cancelled, extended, paid overstays and showed codes",
			"simulator: journeys, reads", n, vs...)
	}
}
