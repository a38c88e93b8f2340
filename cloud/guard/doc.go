// Package guard is the hot-lot guard of the reservation service, on Redis: a
// distributed GCRA rate limit per lot and per client shared by every API
// replica, a short-lived booking lock per lot and time window taken with a
// random token and released only by its owner, the 24-hour fast path of
// stored idempotent responses, and a write-through availability cache kept
// right by versions that every reservation change bumps. Redis only ever cuts
// contention and latency: Postgres stays the source of truth, so every method
// degrades instead of failing when Redis is slow, down or restarted — the
// limiter falls back to a per-replica limit, the lock is skipped, the caches
// are bypassed — and says so through Healthy, Status and the
// parkgate_redis_up and parkgate_guard_* metrics. Concurrent callers'
// commands share Redis pipelines, so a surge costs a round trip per batch,
// not per request; and a hold's calm path asks for everything it needs
// before its write in one script (Admit: replay, full window, both limits)
// and stores its answer with the lot's invalidation in one pipeline
// (InvalidateSaving). Admit leases a limit's tokens a few at a time where
// its burst allows (a sixteenth of it), and the requests that find a token
// of each limit here (Leased) ask Redis nothing before their write: a
// limit is then exact to within about a lease per replica, and a calm
// lot's hold costs Redis one round trip, not two. Methods are safe for concurrent use; one Guard
// serves a whole process.
package guard
