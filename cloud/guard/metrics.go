package guard

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Features named by the fallback counter.
const (
	featureRateLimit    = "ratelimit"
	featureLock         = "lock"
	featureIdempotency  = "idempotency"
	featureAvailability = "availability"
)

// The metrics are package-level because one process runs one Guard; were
// there several, they would share them (the gauges show the last change).
var (
	redisUp = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "parkgate_redis_up",
		Help: "1 while the hot-lot guard reaches Redis, 0 while it takes Redis for down and runs on its fallbacks.",
	})
	fallbacks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_guard_fallbacks_total",
		Help: "Operations the hot-lot guard served without Redis, by feature (ratelimit, lock, idempotency, availability).",
	}, []string{"feature"})
	cacheLookups = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_guard_cache_lookups_total",
		Help: "Redis cache lookups by cache (availability, idempotency) and result (hit, miss).",
	}, []string{"cache", "result"})
	cacheBypassed = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "parkgate_guard_cache_bypassed",
		Help: "1 while the availability cache is bypassed because an invalidation may have been lost.",
	})
	rateLimited = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_guard_rate_limited_total",
		Help: "Requests refused by the rate limit, by scope (lot, client).",
	}, []string{"scope"})
	leasedAdmissions = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_guard_leased_admissions_total",
		Help: "Requests let through on tokens this replica had leased from the shared limits ahead of use, with no Redis round trip.",
	})
	lockResults = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_guard_lock_total",
		Help: "Booking lock attempts by result: acquired, busy (refused after waiting), bypassed (Redis unreachable, proceeded without).",
	}, []string{"result"})
)

func init() {
	// Create every series up front so dashboards see zeros, not gaps.
	for _, f := range []string{featureRateLimit, featureLock, featureIdempotency, featureAvailability} {
		fallbacks.WithLabelValues(f)
	}
	for _, c := range []string{"availability", "idempotency"} {
		cacheLookups.WithLabelValues(c, "hit")
		cacheLookups.WithLabelValues(c, "miss")
	}
	rateLimited.WithLabelValues(scopeLot)
	rateLimited.WithLabelValues(scopeClient)
	for _, r := range []string{"acquired", "busy", "bypassed"} {
		lockResults.WithLabelValues(r)
	}
}
