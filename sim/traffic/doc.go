// Package traffic is the simulated world in front of the gates: drivers who
// search, hold, pay at the Stripe stand-in (at once, too late, or never) and
// retry a timed-out hold with the same Idempotency-Key; their cars, which
// come early, on time, late or overstay; and the cameras, which post plate
// reads to the edge agent with the noise of real LPR (a spread of
// confidence, look-alike characters, a dropped last character, missed
// reads). Cars queue per lane, put themselves on the loop detector through
// the agent's fake pins, and read the barrier relay's edges back to time the
// gate. Everything that happens goes into a Ledger, the simulator's side of
// the story that the invariants hold against the system's records.
package traffic
