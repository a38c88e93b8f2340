package check

import (
	"fmt"
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
	{"changes_reached_edges", ChangesReachedEdges},
	{"late_payment_refunded_once", LatePaymentRefundedOnce},
	{"no_entry_without_reservation", NoEntryWithoutReservation},
	{"idempotent_holds", IdempotentHolds},
	{"exit_never_traps", ExitNeverTraps},
	{"refunds_in_policy", RefundsInPolicy},
	{"overstay_priced_once", OverstayPricedOnce},
	{"code_never_opens_cancelled", CodeNeverOpensCancelled},
	{"permit_holders_admitted", PermitHoldersAdmitted},
	{"revoked_permit_never_opens", RevokedPermitNeverOpens},
	{"presence_reset_applied", PresenceResetApplied},
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

func hm(t time.Time) string { return t.UTC().Format("15:04:05") }

func lotName(run *sim.Run, id string) string {
	for _, l := range run.Lots {
		if l.ID == id {
			return l.Name
		}
	}
	return short(id)
}
