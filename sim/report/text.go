package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the summary as the terminal table.
func (s *Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := s.Config
	mode := fmt.Sprintf("%d drivers", c.Drivers)
	if c.Load {
		mode = fmt.Sprintf("load %.1f drivers/s", c.Rate)
	}
	fmt.Fprintf(tw, "parksim %s\t%d lots × %d spots · %s · %s · seed %d\n", s.Scenario, c.Lots, c.Spots, mode, c.Duration, c.Seed)
	fmt.Fprintf(tw, "\t\n")
	j := s.Journeys
	fmt.Fprintf(tw, "journeys\t%d drivers · %d booked · %d refused a hold · %d intruders (%d let in)\n",
		j.Drivers, j.Booked, j.HoldRefused, j.Intruders, j.IntrudersIn)
	fmt.Fprintf(tw, "\t%d paid (%d reached the cloud after the hold ended) · %d abandoned the checkout · %d refused by Stripe\n",
		j.Paid, j.PaidLate, j.PayAbandoned, j.PayRefused)
	fmt.Fprintf(tw, "\t%d entered · %d left · %d overstayed · %d turned away as too early · %d came late · %d no-shows\n",
		j.Entered, j.Exited, j.Overstayed, j.TooEarly, j.CameLate, j.NoShow)
	l := j.Life
	fmt.Fprintf(tw, "\t%d cancelled in policy (%d refunded) · %d out of policy (%d refused) · %d cancelled codes shown (%d refused)\n",
		l.CancelIn, l.CancelInRefunded, l.CancelOut, l.CancelOutRefused, l.CodeCancelled, l.CodeCancelledNo)
	refused := fmt.Sprintf("%d refused", l.ExtendRefused)
	if len(l.ExtendRefusals) > 0 {
		refused += ": " + joinCounts(l.ExtendRefusals, 3)
	}
	fmt.Fprintf(tw, "\t%d extended of %d asked (%s) · %d overstays owed (%d paid) · %d showed a code at a blind camera (%d let in)\n",
		l.Extended, l.ExtendAsked, refused, l.Overstays, l.OverstaysPaid, l.CodeShown, l.CodeShownIn)
	fmt.Fprintf(tw, "\t%d permit holders (%d let in) · %d revoked permits tried (%d refused) · %d presence resets (%d to a cut-off edge, %d let back in)\n",
		l.Permits, l.PermitsIn, l.Revoked, l.RevokedRefused, l.Resets, l.ResetsOffline, l.ResetsIn)
	h := s.Holds
	fmt.Fprintf(tw, "holds\t%d requests: %s\n", h.Requests, joinCounts(h.Outcomes, 6))
	fmt.Fprintf(tw, "\t%d drivers retried after a timeout, %d answers replayed, %d orphaned holds · latency %s\n", h.Retried, h.Replayed, h.Orphans, h.Latency)
	fmt.Fprintf(tw, "decisions\t%s\n", joinCounts(s.Decisions, 4))
	for i := 4; i < len(s.Decisions); i += 4 {
		fmt.Fprintf(tw, "\t%s\n", joinCounts(s.Decisions[i:], 4))
	}
	fmt.Fprintf(tw, "refunds\t%d made · %d due · %s\n", s.Refunds.Count, s.Refunds.Expected, strings.TrimSpace(money(s.Refunds.Amount)+" "+s.Refunds.Currency))
	fmt.Fprintf(tw, "gate latency\tread → barrier  %s\n", s.Latency.ReadToBarrier)
	fmt.Fprintf(tw, "\tread → answer   %s\n", s.Latency.ReadToAnswer)
	fmt.Fprintf(tw, "\tdecision        %s\n", s.Latency.Decision)
	fmt.Fprintf(tw, "\tloop → trigger  %s  (%d cars never triggered the camera)\n", s.Latency.LoopToTrigger, s.Latency.Untriggered)
	fmt.Fprintf(tw, "sync lag\tgate events, edge → cloud, online   %s\n", s.Sync.Lag)
	fmt.Fprintf(tw, "\tgate events, edge → cloud, offline  %s\n", s.Sync.OfflineLag)
	fmt.Fprintf(tw, "\treservations, cloud → edge          %s  (edges sampled every %s)\n", s.Sync.Down, s.Sync.DownEvery)
	fmt.Fprintf(tw, "offline\t%d decisions while an uplink was cut (%d opened) · %d events flagged offline by the edges\n",
		s.Offline.Decisions, s.Offline.Opens, s.Offline.Flagged)
	fmt.Fprintf(tw, "webhooks\t%d events · %d deliveries\n", s.Webhooks.Events, s.Webhooks.Deliveries)
	if len(s.Faults) == 0 {
		fmt.Fprintf(tw, "faults\tnone\n")
	}
	for i, f := range s.Faults {
		label := "faults"
		if i > 0 {
			label = ""
		}
		at := clock(f.At.Sub(s.Started))
		if !f.Until.IsZero() && f.Until.After(f.At) {
			at += "–" + clock(f.Until.Sub(s.Started))
		}
		detail := ""
		if f.Detail != "" {
			detail = " (" + f.Detail + ")"
		}
		fmt.Fprintf(tw, "%s\t%s %s %s%s\n", label, at, f.Kind, f.Target, detail)
	}
	if l := s.Load; l != nil {
		fmt.Fprintf(tw, "throughput\t%.1f holds/s · %.1f reads/s · %.1f entries/s (each over the time it went on)\n", l.HoldsPerSec, l.ReadsPerSec, l.EntriesPerS)
	}
	fmt.Fprintf(tw, "run\ttraffic %s · settled in %s\n", s.RunFor, s.SettledIn)
	fmt.Fprintf(tw, "\t\n")
	for i, r := range s.Invariants {
		label := "invariants"
		if i > 0 {
			label = ""
		}
		verdict := "PASS"
		if !r.Pass {
			verdict = "FAIL"
		}
		checked := fmt.Sprintf("%5d checked", r.Checked)
		if r.Checked == 0 {
			checked = "nothing to check" // a pass over nothing proves nothing: say so
		}
		fmt.Fprintf(tw, "%s\t%s  %-30s %16s  %s\n", label, verdict, r.Name, checked, r.Title)
		for _, v := range r.Violations {
			fmt.Fprintf(tw, "\t        ✗ %s\n", v)
		}
		if r.Failed > len(r.Violations) {
			fmt.Fprintf(tw, "\t        … and %d more\n", r.Failed-len(r.Violations))
		}
	}
	verdict := "ALL INVARIANTS HOLD"
	if !s.Pass {
		verdict = "INVARIANTS FAILED"
	}
	fmt.Fprintf(tw, "\t\n")
	fmt.Fprintf(tw, "result\t%s\n", verdict)
	if s.Files.HTML != "" {
		fmt.Fprintf(tw, "report\t%s\n", s.Files.HTML)
		fmt.Fprintf(tw, "\t%s\n", s.Files.JSON)
	}
	return tw.Flush()
}

func joinCounts(cs []Count, n int) string {
	if len(cs) == 0 {
		return "none"
	}
	parts := make([]string, 0, n)
	for i, c := range cs {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", c.Count, c.Key))
	}
	return strings.Join(parts, " · ")
}

func money(minor int64) string {
	return fmt.Sprintf("%d.%02d", minor/100, minor%100)
}

// clock prints an offset from the run's start as m:ss.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
