// Package alerts delivers the operators' alert webhooks: it drains the
// store's alert outbox (cloud.AlertOutbox), posting each event to each
// subscribed endpoint as {"id","type","created","data"}, signed with the
// endpoint's secret in a Parkgate-Signature header (Stripe's scheme:
// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>). A 2xx
// answer delivers it; anything else is retried with exponential backoff and
// jitter until three days after the event, then given up. Rows stay in
// Postgres until then, so a restart loses nothing, and every attempt carries
// the same event id for receivers to deduplicate by: delivery is at least
// once. Any number of replicas may run a Deliverer: each claims rows with
// FOR UPDATE SKIP LOCKED under a lease. Sign and Verify are the signature
// for both sides.
package alerts
