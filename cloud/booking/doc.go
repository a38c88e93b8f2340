// Package booking is the reservation service: it turns a driver's request
// into a PENDING hold (idempotently, with a Checkout Session to pay through),
// turns verified payment events into CONFIRMED or refunded reservations, and
// runs the workers that end overdue holds and close their Checkout Sessions.
// Postgres decides every question of who gets a spot; the payment provider
// and the Redis guard are ports declared here and may be absent.
package booking
