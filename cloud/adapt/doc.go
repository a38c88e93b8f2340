// Package adapt fits the adapters (stripepay, guard) to the ports the
// booking service and the HTTP API declare, so that parkcloud's main, the
// benchmarks and the simulator wire the same pieces the same way.
package adapt
