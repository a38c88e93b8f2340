// Package check proves a simulated run's invariants from what the run
// collected: pure functions over a sim.Run, so a test can hand them a run
// that was broken on purpose and see them fail. Each check reads the sources
// of truth (Postgres rows, the Stripe stand-in's payments and refunds) and
// holds them against the simulator's own ledger of what drivers and cars did,
// rather than trusting either alone.
package check
