package fleet

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Write prints the result as a short table, the figures deploy/CAPACITY.md
// is built from.
func (r *Result) Write(w io.Writer) {
	p := r.Steady
	fmt.Fprintf(w, "fleet: %d lots, %d broker connections (production config: TLS, acl, per-lot users)\n", r.Lots, r.Connections)
	fmt.Fprintf(w, "  start-up            every agent connected, key registered: %s\n", round(r.StartAll))
	fmt.Fprintf(w, "  memory per agent    %.1f KiB Go heap, %.1f KiB RSS (in one process)\n", kib(r.HeapPerAgent), kib(r.RSSPerAgent))
	fmt.Fprintf(w, "  mosquitto RSS       %.1f MiB (%.1f KiB per connection); parkcloud RSS %.1f MiB\n",
		mib(r.BrokerRSS), kib(r.BrokerRSS)/float64(max(r.Connections, 1)), mib(r.CloudRSS))
	if r.Idle.ElapsedS > 0 {
		fmt.Fprintf(w, "idle: %.0fs, every lot connected, nothing booked\n  CPU                 %s\n", r.Idle.ElapsedS, cpuLine(r.Idle.CPU, r.Idle.ElapsedS))
	}
	fmt.Fprintf(w, "steady: %d bookings in %.1fs (%.1f/s made of %.1f/s asked, %d failed)\n", p.Bookings, p.ElapsedS,
		float64(p.Bookings)/max(p.ElapsedS, 1e-9), p.Rate, p.Failed)
	if p.LastError != "" {
		fmt.Fprintf(w, "  last failure        %s\n", p.LastError)
	}
	fmt.Fprintf(w, "  confirmed → applied %s\n", p.ConfirmedToApplied)
	fmt.Fprintf(w, "  commit → applied    %s\n", p.CommitToApplied)
	fmt.Fprintf(w, "  relay               %.0f changes published, %.1f/s\n", p.RelayPublished, p.RelayPerSecond)
	fmt.Fprintf(w, "  CPU over the phase  %s\n", cpuLine(p.CPU, p.ElapsedS))
	if c := p.CPU["parkcloud"]; c > 0 {
		fmt.Fprintf(w, "  per core-second     parkcloud: %.0f relay msgs, %.0f bookings", p.RelayPublished/c, float64(p.Bookings)/c)
		for _, k := range []string{"postgres", "mosquitto"} {
			if v := p.CPU[k]; v > 0 {
				fmt.Fprintf(w, "; %s: %.0f bookings", k, float64(p.Bookings)/v)
			}
		}
		fmt.Fprintln(w)
	}
	if rs := r.Restart; rs != nil {
		fmt.Fprintf(w, "broker restart: %d persistent sessions, down %.1fs with %d bookings confirmed meanwhile\n", rs.Sessions, rs.DownS, rs.Bookings)
		fmt.Fprintf(w, "  from broker up      every edge reconnected %.1fs, every edge caught up %.1fs\n", rs.ReconnectedS, rs.CaughtUpS)
		fmt.Fprintf(w, "  edge reconnected    %s\n", rs.EdgeReconnect)
		fmt.Fprintf(w, "  CPU until caught up %s\n", cpuLine(rs.CPU, rs.CaughtUpS))
		fmt.Fprintf(w, "  commit → applied    %s (the outage's bookings)\n", rs.CommitToApplied)
	}
	fmt.Fprintf(w, "entries: %d booked cars shown at their entry, %d let in, %d gate events in the cloud\n", r.Entries, r.EntriesOpen, r.EventsStored)
	if r.EntryElapsed > 0 {
		fmt.Fprintf(w, "  CPU until stored and CHECKED_IN back at the edges (%.1fs): %s\n", r.EntryElapsed, cpuLine(r.EntryCPU, r.EntryElapsed))
		if c := r.EntryCPU["parkcloud"]; c > 0 && r.Entries > 0 {
			fmt.Fprintf(w, "  per core-second     parkcloud: %.0f entries", float64(r.Entries)/c)
			if v := r.EntryCPU["postgres"]; v > 0 {
				fmt.Fprintf(w, "; postgres: %.0f entries", float64(r.Entries)/v)
			}
			fmt.Fprintln(w)
		}
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "correct: every confirmed booking applied at its edge, every edge caught up, every booked car let in")
		return
	}
	fmt.Fprintf(w, "PROBLEMS (%d):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

func cpuLine(cpu map[string]float64, elapsed float64) string {
	keys := make([]string, 0, len(cpu))
	for k := range cpu {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1fs (%.0f%% of a core)", k, cpu[k], 100*cpu[k]/elapsed))
	}
	return strings.Join(parts, ", ")
}

func kib(b int64) float64 { return float64(b) / 1024 }
func mib(b int64) float64 { return float64(b) / (1 << 20) }
