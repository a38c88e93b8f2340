// Package pgbus is the Postgres backend of the payment-event bus and its
// default: an inbox table (payment_events, migration 002; its claim, a function) in the database
// the service already has, so recording a webhook event costs one round
// trip and no other system. Publish inserts the event by its Stripe id (a
// second copy is a no-op), then wakes consumers: its own process's
// directly, other replicas' by a NOTIFY sent after the commit and shared by
// the publishes made meanwhile, since Postgres serializes the commits of
// notifying transactions. Workers claim one event at a time with FOR UPDATE
// SKIP LOCKED under a lease they renew while the handler runs; an event
// whose lease ran out (its worker died) is claimed again. A key's events
// are handled one at a time, oldest Stripe creation time first, then by
// arrival: an event is not claimed while an older one of its key is
// unprocessed or another of its key is leased. Workers wake on
// LISTEN/NOTIFY and poll as a backstop, which also picks up backoffs and
// expired leases.
package pgbus
