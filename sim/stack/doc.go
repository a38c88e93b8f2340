// Package stack brings up the whole parkgate system on this machine with
// real parts, for one simulated run: the local services through
// deploy/services.sh, a fresh Postgres schema, a Mosquitto of the run's own
// (internal/testkit/broker, so it can be restarted), the Stripe stand-in
// behind a webhook gateway that can hold a payment's events back, parkcloud
// as a process, and one parkedge process per lot with fake pins, each
// reaching the broker through a tcpproxy the simulator can cut. Collect reads
// the sources of truth into a sim.Run once the run has settled; Close takes
// it all down and drops the schema unless told to keep it.
package stack
