// Package failover holds the failover drills of issue 16 and what they
// share: bin/parkcloud as its own process on a Stripe stand-in (Cloud), a
// load of holds that are paid and watched until a client reads them
// CONFIRMED (Load), and what it measured (Report). The drills themselves
// are tests: TestPostgresFailover kills the primary of a Patroni-managed,
// synchronously replicated pair under load and proves parkcloud, on a
// multi-host DATABASE_URL, carries on by itself with no acknowledged hold
// or CONFIRMED booking lost; TestRedisSentinelFailover kills the Redis
// master behind Sentinel and proves the guard follows the promoted replica
// while bookings stay correct. Short by default (part of make test);
// DRILL_DURATION (make drill-postgres, make drill-redis) repeats the
// failover, node back in between, for that long. deploy/FAILOVER.md is the
// runbook and the numbers.
package failover
