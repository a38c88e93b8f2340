// Package cloud is the domain of the parkgate reservation service: lots,
// spots, reservations and their life (PENDING → CONFIRMED → CHECKED_IN →
// COMPLETED, or EXPIRED, CANCELLED, REFUNDED), money, and the one set of error
// codes every adapter speaks. Adapters live below it — postgres (the
// authoritative store), httpapi (the driver and operator API), stripepay,
// bus, relay, guard — and import it; it imports none of them.
package cloud
