// Package relay is the cloud side of the edge sync: the outbox relay that
// publishes each lot's change log to its reservations topic, signed and in
// sequence order, marking rows published only once the broker acknowledged
// them on the connection they went out on; the catch-up read of that log for
// edges that missed messages, with the lot-scoped edge tokens that guard it;
// and the gate-event ingest, which consumes the events topic through a shared
// subscription, stores each event once by its event id, moves reservations to
// CHECKED_IN and COMPLETED in the same transaction (with their outbox rows),
// and acknowledges the MQTT message only after that commit, so a crash
// redelivers rather than loses. Several replicas may run all of it at once:
// per-lot leases keep one publisher per lot and the broker splits the events.
package relay
