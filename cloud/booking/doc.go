// Package booking is the reservation service: it turns a driver's request
// into a PENDING hold (idempotently, with a Checkout Session to pay through),
// turns verified payment events into CONFIRMED or refunded reservations, and
// runs the workers that end overdue holds and close their Checkout Sessions.
// The store (cloud.Store, Postgres) decides every question of who gets a
// spot; the payment provider (cloud.Payments) and the Redis guard
// (cloud.Guard) may be absent. It knows the ports in package cloud, never
// the adapters behind them.
package booking
