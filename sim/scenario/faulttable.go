package scenario

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
)

// FaultRow is what one kind of fault did to the clients, summed over each
// time it happened in a run.
type FaultRow struct {
	Kind  string `json:"kind"`
	Times int    `json:"times"`
	// Requests are the hold requests and plate reads sent from the fault's
	// start until afterFault past its end.
	Requests int `json:"requests"`
	// Errors are those that got no answer or a 5xx: what a driver or a
	// camera saw go wrong. A 409 or 429 is an answer, not an error.
	Errors int `json:"errors"`
	// Lost are answered requests whose record is not where it must be at
	// the end: a decision without its gate event in the cloud, a hold
	// answered 201 without its reservation in Postgres, a driver who held
	// during the fault, paid, came on time and was neither let in nor
	// refunded (the payment's effect lost).
	Lost int `json:"lost"`
	// Recover is the longest, over the times it happened, from the fault's
	// start until the system was whole again (cloud ready, every edge
	// connected) and no client request saw an error any more.
	Recover time.Duration `json:"recover"`
	Detail  string        `json:"detail,omitempty"`
	// Notes name the first few records lost.
	Notes []string `json:"notes,omitempty"`
	// ErrorKinds counts the errors by what the client saw.
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
}

func (r *FaultRow) note(n string) {
	if len(r.Notes) < 5 {
		r.Notes = append(r.Notes, n)
	}
}

func (r *FaultRow) failed(kind string) {
	r.Errors++
	if r.ErrorKinds == nil {
		r.ErrorKinds = map[string]int{}
	}
	r.ErrorKinds[kind]++
}

// afterFault is how long after a fault's end requests still count as
// during it: a client retrying into a service that just came back.
const afterFault = 3 * time.Second

// FaultTable measures each kind of fault of a run, in the order they first
// happened.
func FaultTable(run *sim.Run) []FaultRow {
	events := make(map[string]bool, len(run.GateEvents))
	for _, e := range run.GateEvents {
		events[e.EventID] = true
	}
	reservations := make(map[string]bool, len(run.Reservations))
	for _, r := range run.Reservations {
		reservations[r.ID] = true
	}
	refunded := map[string]bool{} // reservation id
	intents := map[string]string{}
	for _, p := range run.Payments {
		intents[p.PaymentIntentID] = p.ReservationID
	}
	for _, r := range run.Refunds {
		refunded[intents[r.PaymentIntentID]] = true
	}
	var rows []FaultRow
	index := map[string]int{}
	for _, f := range run.Faults {
		i, ok := index[f.Kind]
		if !ok {
			i = len(rows)
			index[f.Kind] = i
			rows = append(rows, FaultRow{Kind: f.Kind})
		}
		row := &rows[i]
		row.Times++
		if f.Detail != "" && f.Detail != "ok" && !strings.Contains(row.Detail, f.Detail) {
			row.Detail = strings.TrimPrefix(row.Detail+"; "+f.Detail, "; ")
		}
		until := f.Until
		if until.Before(f.At) {
			until = f.At
		}
		from, to := f.At, until.Add(afterFault)
		in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
		lastErr := until
		for _, j := range run.Journeys {
			during := false
			for _, a := range j.Holds {
				if !in(a.At) {
					continue
				}
				during = true
				row.Requests++
				if a.Status == 0 || a.Status >= 500 {
					kind := fmt.Sprintf("hold %d %s", a.Status, a.Code)
					if a.Status == 0 {
						kind = "hold no answer"
					}
					row.failed(strings.TrimSpace(kind))
					lastErr = later(lastErr, a.At.Add(a.Latency))
				}
				if a.Status == 201 && j.ReservationID != "" && !reservations[j.ReservationID] {
					row.Lost++
				}
			}
			if during && !j.PaidAt.IsZero() && j.Plan.Arrival == sim.ArrivalOnTime && !j.Entered() && !refunded[j.ReservationID] {
				row.Lost++
				row.note(fmt.Sprintf("driver %d paid, came on time, was neither let in nor refunded", j.Driver))
			}
		}
		for _, rd := range run.Reads {
			if !in(rd.SentAt) || rd.Err == "camera missed" {
				continue
			}
			row.Requests++
			if rd.Decision == "" {
				row.failed("plate read without an answer")
				lastErr = later(lastErr, rd.SentAt.Add(rd.RTT))
			} else if rd.EventID != "" && !events[rd.EventID] {
				row.Lost++
			}
		}
		row.Recover = max(row.Recover, lastErr.Sub(f.At))
	}
	return rows
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// FaultMarkdown is the table as README.md's reliability section shows it,
// with the run's invariants under it.
func FaultMarkdown(rows []FaultRow, results []check.Result) string {
	var b strings.Builder
	b.WriteString("| fault | times | requests during it | client-visible errors | data lost | time to recover (max) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %d | %d | %d | %d | %s |\n", r.Kind, r.Times, r.Requests, r.Errors, r.Lost,
			r.Recover.Round(10*time.Millisecond))
	}
	var failed []string
	for _, r := range results {
		if !r.Pass {
			failed = append(failed, fmt.Sprintf("%s (%d)", r.Name, r.Failed))
		}
	}
	b.WriteString("\n")
	if len(failed) == 0 {
		fmt.Fprintf(&b, "All %d invariants and expectations held after the faults.\n", len(results))
	} else {
		fmt.Fprintf(&b, "FAILED after the faults: %s.\n", strings.Join(failed, ", "))
	}
	for _, r := range rows {
		var notes []string
		if r.Detail != "" {
			notes = append(notes, r.Detail)
		}
		notes = append(notes, r.Notes...)
		if len(r.ErrorKinds) > 0 {
			kinds := make([]string, 0, len(r.ErrorKinds))
			for k, n := range r.ErrorKinds {
				kinds = append(kinds, fmt.Sprintf("%d× %s", n, k))
			}
			sort.Strings(kinds)
			notes = append(notes, "errors: "+strings.Join(kinds, ", "))
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, "\n- `%s`: %s\n", r.Kind, strings.Join(notes, "; "))
		}
	}
	return b.String()
}
