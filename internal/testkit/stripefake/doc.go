// Package stripefake is a local stand-in for the slice of Stripe's API that
// parkgate uses: Checkout Sessions (create, retrieve, expire), Refunds, and
// signed webhook events with Stripe's retry behaviour. It speaks Stripe's wire
// format (form-encoded requests with bracket notation, JSON objects that
// stripe-go decodes, Stripe's error envelope, idempotency keys scoped per
// secret key), so production code runs against it unchanged with only the API
// base swapped. Tests and the simulator drive the other side of the payment
// through methods such as Pay, PayAsync, Expire and Redeliver, and simulate
// outages with SetOutage. It keeps everything in memory, ignores parameters
// it does not model instead of refusing them as Stripe would, and is not a
// faithful model of anything it does not list. It stands in for a service
// that cannot run here, for tests and the simulator only; it lives under
// internal/testkit so cloud tests and the simulator import it from one
// neutral place.
package stripefake
