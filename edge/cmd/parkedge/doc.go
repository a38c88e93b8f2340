// Command parkedge is the gate agent of one parking lot. It only wires:
// configuration from flags with environment fallbacks (see -help), the
// bbolt store, the gates' hardware (real pins through periph, or fake pins
// with simulator endpoints under /v1/sim), the agent, the MQTT link and the
// HTTP API, and shuts them down in order on SIGTERM; the logic lives in the
// edge packages.
package main
