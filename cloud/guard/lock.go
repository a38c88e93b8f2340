package guard

import (
	"context"
	cryptorand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/redis/go-redis/v9"
)

// ErrBusy is Lock's answer when another booking of the same lot and window
// held the lock for all of LockWait. Its code is rate_limited: the HTTP
// layer answers 429 with "Retry-After: 1", which sheds a surge quickly
// instead of queueing it on the lot's row lock in Postgres.
var ErrBusy = &cloud.Error{Code: cloud.ERateLimited, Message: "this lot is busy with other bookings, retry in a moment"}

// maxLockBuckets caps the keys one Lock takes; a longer booking locks its
// first maxLockBuckets buckets only, which still contends with every
// booking that overlaps its start.
const maxLockBuckets = 32

// acquireScript takes every key or none, so a booking spanning several
// buckets can never deadlock against one spanning an overlapping set.
var acquireScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then return 0 end
end
for _, k in ipairs(KEYS) do
  redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
end
return 1
`)

// releaseScript deletes only the keys that still carry the owner's token: a
// lock that expired and was taken by someone else stays theirs.
var releaseScript = redis.NewScript(`
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    redis.call('DEL', k)
    n = n + 1
  end
end
return n
`)

// Lock takes the booking lock of lotID for the window [start, end) and
// returns the function that releases it; call release once the hold's
// Postgres transaction has ended (not around the Stripe call, which would
// hold the window for a network round trip). Release is idempotent and safe
// after the lock's LockTTL has passed.
//
// The lock is a set of keys "NS:lock:{lotID}_BUCKETSTART_BUCKETEND", one
// per LockBucket (a UTC day by default) that the window touches, taken all
// or none with a random token and LockTTL. Bookings of one lot whose
// windows overlap always share a bucket and so take turns; bookings of the
// same lot on the same day do too, which costs little since Postgres
// orders a lot's writers on its row anyway. A window longer than 32 buckets
// locks its first 32. (The braces make lotID a Redis Cluster hash tag, so a
// lot's keys share a slot.)
//
// Lock waits up to LockWait, retrying with short jittered backoff, then
// returns ErrBusy. It returns ctx's error if ctx ends first. If Redis does
// not answer it returns a no-op release and a nil error: the lock only cuts
// contention, and the Postgres exclusion constraint keeps bookings correct
// without it.
func (g *Guard) Lock(ctx context.Context, lotID string, start, end time.Time) (release func(), err error) {
	keys := g.lockKeys(lotID, start, end)
	token := cryptorand.Text() // 128 random bits: only the owner knows it
	ttl := strconv.FormatInt(g.opts.LockTTL.Milliseconds(), 10)
	deadline := time.Now().Add(g.opts.LockWait)
	backoff := 2 * time.Millisecond
	for {
		var got int64
		err := g.call(ctx, func(ctx context.Context) error {
			var err error
			got, err = acquireScript.Run(ctx, g.pipe, keys, token, ttl).Int64()
			return err
		})
		if err != nil {
			if cerr := ctxDone(ctx); cerr != nil {
				return nil, fmt.Errorf("guard: lock lot %s: %w", lotID, cerr)
			}
			fallbacks.WithLabelValues(featureLock).Inc()
			lockResults.WithLabelValues("bypassed").Inc()
			return func() {}, nil
		}
		if got == 1 {
			lockResults.WithLabelValues("acquired").Inc()
			return g.releaser(keys, token), nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			lockResults.WithLabelValues("busy").Inc()
			return nil, ErrBusy
		}
		// Full jitter keeps a crowd of waiters from polling in step.
		sleep := min(left, time.Duration(rand.Int64N(int64(backoff)))+time.Millisecond)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("guard: lock lot %s: %w", lotID, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 16*time.Millisecond)
	}
}

// ctxDone is ctx.Err(), and DeadlineExceeded once ctx's deadline has
// passed even if its timer has not fired yet: the Redis client times out on
// the connection's own deadline, derived from ctx's, and can report it a
// moment before ctx does, which must not read as "Redis is down".
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func (g *Guard) releaser(keys []string, token string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			// A fresh context: release runs when the request may be over,
			// and an unreleased lock only costs the others its TTL.
			_ = g.call(context.Background(), func(ctx context.Context) error {
				return releaseScript.Run(ctx, g.pipe, keys, token).Err()
			})
		})
	}
}

// lockKeys names the buckets [start, end) touches, in order.
func (g *Guard) lockKeys(lotID string, start, end time.Time) []string {
	b := g.opts.LockBucket
	// Truncate counts from the zero time, which is UTC midnight, so day
	// buckets are UTC days whatever the location of start.
	from := start.UTC().Truncate(b)
	var keys []string
	for t := from; len(keys) == 0 || (t.Before(end) && len(keys) < maxLockBuckets); t = t.Add(b) {
		keys = append(keys, g.key("lock", "{"+lotID+"}_"+t.Format(time.RFC3339)+"_"+t.Add(b).Format(time.RFC3339)))
	}
	return keys
}
