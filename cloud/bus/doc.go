// Package bus carries verified Stripe webhook events from the request that
// recorded them to the workers that act on them, so the webhook can answer
// Stripe as soon as an event is durable and the slow part (state changes,
// refunds) happens off the request path. Delivery is at least once and in
// order per key: Stripe itself retries for days and delivers out of order,
// so handlers are idempotent by construction and the bus only promises what
// both of its backends can keep. The interfaces here are the whole contract;
// pgbus (the default, an inbox table in Postgres) and kafkabus (Kafka through
// franz-go) implement it, and bustest holds the one suite both must pass.
package bus
