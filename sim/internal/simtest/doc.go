// Package simtest builds small, consistent sim.Run values by hand, so the
// invariant checks and the report can be tested without running the system:
// Run returns a run in which every invariant holds, and a test breaks one
// thing in it to see the matching check fail.
package simtest
