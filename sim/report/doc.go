// Package report turns a simulated run and its invariant results into what a
// person reads at a glance: a Summary (journeys, decisions by reason,
// refunds, gate latency percentiles, sync lag, offline decisions, faults,
// invariants) printed as a terminal table, written as JSON, and written as a
// self-contained HTML page whose charts (latency histogram, occupancy over
// time, events per minute) are inline SVG with no external assets.
package report
