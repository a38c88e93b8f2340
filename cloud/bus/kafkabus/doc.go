// Package kafkabus is the Kafka backend of the payment-event bus, through
// franz-go, for when webhook volume outgrows the Postgres inbox. Publish
// produces with the idempotent producer and returns only once all in-sync
// replicas have the record; the record key is the message key, so one
// reservation's events share a partition and keep their order. Each Run is
// a member of one consumer group with a worker per assigned partition:
// records of a partition are handled one at a time, a failing record is
// retried in place with backoff (never skipped), and offsets are committed
// only up to the last record whose handler succeeded — after catching up,
// before each backoff, and when a partition is revoked or Run stops, so a
// new owner starts exactly where the old one left off. Kafka cannot tell a
// duplicate publish, so an event ID may be delivered more than once; the
// handlers are idempotent for that reason.
package kafkabus
