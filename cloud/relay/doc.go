// Package relay is the cloud side of the edge sync, in three jobs that talk
// to the store only through the ports of package cloud: the publisher
// (publisher.go) sends each lot's change log (cloud.Outbox) to the lot's
// reservations topic, signed and in seq order, with per-lot leases so that
// several replicas share the lots; the catch-up feed (feed.go) signs the
// same log (cloud.ChangeLog) for edges that missed messages; and the ingest
// (ingest.go) stores gate events and gate status (cloud.GateEventStore),
// acknowledging each MQTT message only after its commit, and applies only
// events signed by a key the lot's agents registered (cloud.EdgeKeys,
// cached by ingestkeys.go). The edge tokens that guard the catch-up read
// are the store's (cloud.EdgeTokens).
package relay
