// Package scenario names the simulator's scenarios (happy, offline-edge,
// late-payment, broker-restart, hot-lot, demo, and the load mode) and runs
// one: it plans the drivers from a seed, brings the stack up, lets the
// traffic loose while faults fire on schedule, waits for the system to
// settle, collects the sources of truth, proves the invariants (plus what
// the scenario itself must show, such as "the cut edge decided offline"),
// and writes the report. Run returns the verdict; the caller decides the
// exit status.
package scenario
