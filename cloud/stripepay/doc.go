// Package stripepay is parkgate's adapter to Stripe: it opens Checkout
// Sessions for held reservations, expires them when a hold ends before Stripe
// would, refunds payments that arrive too late, and verifies the signatures
// of Stripe's webhook events. It wraps stripe-go v76 with go-retryablehttp as
// the only retry layer (stripe-go's own retries are off, so attempts do not
// multiply), points at a configurable API base so tests and the simulator can
// use internal/testkit/stripefake, and reduces Stripe's many failure shapes to the few the
// service acts on: ErrUnavailable (answer 503, try later),
// cloud.ErrSessionCompleted (a payment got through) and
// cloud.ErrInvalidSignature. Client implements cloud.Payments; webhook
// events are decoded once, into cloud.PaymentEvent, where they are verified.
package stripepay
