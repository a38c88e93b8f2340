// Package edge is the gate agent of one parking lot: the domain types it
// shares with its adapters (gates, policy, plate reads, decisions, what the
// store knows about a plate), the pure decision function Decide that turns a
// plate read, the stored state, the clock and the policy into open or deny
// with a reason, and the Agent that wires a decision to a barrier, a store and
// a link to the cloud. The agent must decide with or without a network, so it
// only ever reads its own store; the small interfaces it needs (Store,
// Barrier, Link, Observer) are declared here and implemented by the
// subpackages bolt, hw and mqttlink, which import this package and never the
// other way round.
package edge
