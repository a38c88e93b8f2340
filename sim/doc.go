// Package sim is the parkgate simulator's domain: what a simulated run did
// and what it found in the system's own records afterwards. A Run holds the
// simulator's ledger (drivers' journeys, every camera read it posted and the
// gate's answer, the faults it injected, occupancy over time) next to what
// the sources of truth hold once the run has settled: reservations and their
// change log and the gate events from Postgres, payments and refunds from the
// Stripe stand-in, each edge's sync state.
//
// The subpackages do the work and import this one, never the other way
// round: stack (bringing up the whole system as real processes), traffic
// (drivers, cars and cameras), check (the invariants, pure functions over a
// Run), report (the terminal table, JSON and HTML page) and scenario (named
// scenarios and the runner that ties them together). cmd/parksim only wires.
// The kits it shares with cloud and edge tests (the private broker, the
// Stripe stand-in, the links it can cut) live in internal/testkit.
package sim
