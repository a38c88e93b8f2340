// Package cloud is the domain of the parkgate reservation service: lots,
// spots, reservations and their life (PENDING → CONFIRMED → CHECKED_IN →
// COMPLETED, or EXPIRED, CANCELLED, REFUNDED), money, the one set of error
// codes every adapter speaks, and the ports the service and the API use:
// the store (Store, LotStore, ReservationStore, OperatorStore), the payment provider
// (Payments, PaymentEvent) and the hot-lot guard (Guard, Limiter,
// AvailabilityCache). Adapters live below it — postgres (the authoritative
// store), httpapi (the driver and operator API), stripepay, bus, relay,
// guard — implement those ports directly and import it; it imports none of
// them.
package cloud
