// Package cloud is the domain of the parkgate reservation service: lots,
// spots, reservations and their life (PENDING → CONFIRMED → CHECKED_IN →
// COMPLETED, or EXPIRED, CANCELLED, REFUNDED), money, the one set of error
// codes every adapter speaks, and the ports the service and the API use:
// the store (Store, LotStore, ReservationStore, OperatorStore), the payment provider
// (Payments, PaymentEvent), the hot-lot guard (Guard, Limiter,
// AvailabilityCache) and the operators' alerts (WebhookEndpoints,
// AlertOutbox, EdgeStatusReader). Adapters live below it — postgres (the
// authoritative store), httpapi (the driver and operator API), stripepay,
// bus, relay, alerts, guard — implement those ports directly and import it;
// it imports none of them.
package cloud
