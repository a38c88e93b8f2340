package guard

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/parkgate/parkgate/cloud"
	"github.com/redis/go-redis/v9"
)

// Options configure a Guard. Every zero field takes the default named in its
// comment.
type Options struct {
	// Namespace prefixes every key, so several deployments (or tests) can
	// share one Redis. Default "parkgate".
	Namespace string

	// LotRate is the limit of requests per lot (AllowLot) for lots
	// without an entry in LotRates. Default 50/s, burst 100.
	LotRate Limit
	// LotRates overrides LotRate per lot id; see ParseLimits for the
	// configuration syntax.
	LotRates map[string]Limit
	// ClientRate is the limit per client (AllowClient), over
	// every lot. Default 20/s, burst 40.
	ClientRate Limit
	// Replicas is how many API replicas are assumed to share the limits.
	// While Redis is unreachable each replica enforces the limits on its own,
	// divided by Replicas (burst at least 1), so the fleet as a whole stays
	// near the configured rate. Set it to the usual replica count: a number
	// above the real one errs strict, below it errs lenient. Default 1.
	Replicas int

	// LockTTL is how long a booking lock lives unless its owner releases it:
	// longer than a slow hold transaction, short enough that a crashed owner
	// blocks its window only briefly. Default 5s.
	LockTTL time.Duration
	// LockBucket is the granularity of lock windows: a booking locks every
	// bucket its window touches, so overlapping bookings of one lot always
	// contend. Default 24h (UTC days).
	LockBucket time.Duration
	// LockWait bounds how long Lock waits for a held lock before it gives up
	// with ErrBusy. Default 100ms.
	LockWait time.Duration

	// IdempotencyTTL is how long stored responses stay in Redis. Default 24h.
	IdempotencyTTL time.Duration
	// AvailabilityTTL bounds the life of an availability entry. It is a
	// safety net (and the bound on staleness in the rare cases described on
	// InvalidateLot); invalidation is what keeps entries right. Default 30s.
	AvailabilityTTL time.Duration

	// OpTimeout bounds each Redis call, so a slow or dead Redis costs a
	// booking at most this much per call. Default 50ms.
	OpTimeout time.Duration
	// FailureThreshold is how many Redis calls in a row must fail before
	// the guard takes Redis for down and stops trying; a lone timeout under
	// load takes the fallback for that call only. Default 3.
	FailureThreshold int
	// RetryInterval is how often, while Redis is down, one call is let
	// through to probe it; the others go straight to their fallback and cost
	// nothing. Default 1s.
	RetryInterval time.Duration
	// HealthInterval is the PING period of Run. Default 1s.
	HealthInterval time.Duration

	// Now is the clock of the fallback limiter, of the leases' lives and
	// of the down-state probe. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = "parkgate"
	}
	o.LotRate = o.LotRate.orDefault(Limit{Rate: 50, Burst: 100})
	o.ClientRate = o.ClientRate.orDefault(Limit{Rate: 20, Burst: 40})
	rates := make(map[string]Limit, len(o.LotRates))
	for id, l := range o.LotRates {
		rates[id] = l.orDefault(o.LotRate)
	}
	o.LotRates = rates
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.LockTTL, 5*time.Second)
	def(&o.LockBucket, 24*time.Hour)
	def(&o.LockWait, 100*time.Millisecond)
	def(&o.IdempotencyTTL, 24*time.Hour)
	def(&o.AvailabilityTTL, 30*time.Second)
	def(&o.OpTimeout, 50*time.Millisecond)
	def(&o.RetryInterval, time.Second)
	def(&o.HealthInterval, time.Second)
	if o.FailureThreshold < 1 {
		o.FailureThreshold = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

var (
	_ cloud.Guard             = (*Guard)(nil)
	_ cloud.Limiter           = (*Guard)(nil)
	_ cloud.AvailabilityCache = (*Guard)(nil)
)

// Guard is the hot-lot guard. Create it with New.
type Guard struct {
	rdb     redis.UniversalClient
	pipe    *autoPipe // every command but the health probe's goes through it
	opts    Options
	limiter *redis_rate.Limiter
	local   *localLimiter
	denied  denyMemo
	leases  leases

	// Down state: while up is false, calls before retryAt (unix nanos) skip
	// Redis, and the first call after it probes. failures counts failed
	// calls since the last success.
	up        atomic.Bool
	failures  atomic.Int64
	retryAt   atomic.Int64
	downSince atomic.Int64
	lastErr   atomic.Pointer[string]

	// The availability cache is trusted only while cleanGen == failGen:
	// failGen counts Redis failures, cleanGen is the failGen seen before the
	// last successful epoch bump. See InvalidateLot.
	failGen  atomic.Uint64
	cleanGen atomic.Uint64
	bumping  sync.Mutex
}

// New returns a Guard on rdb; it does not talk to Redis until first used.
// rdb should be a single Redis (or a sentinel failover client): the
// availability scripts touch a global key with per-lot keys, which Redis
// Cluster would refuse as cross-slot. NewClient configures one well.
func New(rdb redis.UniversalClient, opts Options) *Guard {
	opts = opts.withDefaults()
	// A pipeline that outlives its callers' OpTimeout is given up a little
	// later, so one stalled write cannot hold its writer for long.
	pipe := newAutoPipe(rdb, 2*opts.OpTimeout)
	g := &Guard{
		rdb:     rdb,
		pipe:    pipe,
		opts:    opts,
		limiter: redis_rate.NewLimiter(pipe),
		local:   newLocalLimiter(),
	}
	g.up.Store(true)
	return g
}

// NewClient returns a go-redis client for url ("redis://host:port/db")
// tuned for the guard: context deadlines are honoured, failed commands are
// not retried, and dials give up fast — go-redis' defaults would hold a
// booking for seconds against a dead Redis, where the guard would rather
// take its fallback at once.
func NewClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("guard: parse redis url: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DialTimeout = 250 * time.Millisecond
	opt.DialerRetries = 1
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.PoolTimeout = 100 * time.Millisecond
	return redis.NewClient(opt), nil
}

// NewUniversalClient is NewClient, or, for a URL that names a Sentinel
// master — go-redis' failover form,
// "redis://sentinel1:26379/0?master_name=NAME&addr=sentinel2:26379&addr=sentinel3:26379"
// (a master password as the password= parameter; userinfo is the
// sentinels') — a failover client with the same tuning: it asks the
// sentinels for the master and follows their +switch-master, so the guard
// writes to the promoted replica after a failover without a restart. While
// the sentinels agree, the guard takes its fallbacks as for any outage.
func NewUniversalClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("guard: parse redis url: %w", err)
	}
	if !u.Query().Has("master_name") {
		return NewClient(rawURL)
	}
	opt, err := redis.ParseFailoverURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("guard: parse redis sentinel url: %w", err)
	}
	if opt.MasterName == "" {
		return nil, errors.New("guard: parse redis sentinel url: empty master_name")
	}
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DialTimeout = 250 * time.Millisecond
	opt.DialerRetries = 1
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.PoolTimeout = 100 * time.Millisecond
	return redis.NewFailoverClient(opt), nil
}

var errSkipped = errors.New("guard: redis is down, call skipped")

func (g *Guard) now() time.Time { return g.opts.Now() }

// key joins the namespace and parts with ':'.
func (g *Guard) key(parts ...string) string {
	k := g.opts.Namespace
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// admit reports whether a call may go to Redis: always while Redis is up,
// and while it is down only for the one caller that wins the next probe.
func (g *Guard) admit() bool {
	if g.up.Load() {
		return true
	}
	now := g.now().UnixNano()
	at := g.retryAt.Load()
	if now < at {
		return false
	}
	return g.retryAt.CompareAndSwap(at, now+int64(g.opts.RetryInterval))
}

// call runs fn with the per-call timeout unless Redis is known to be down,
// and records what the outcome says about Redis. redis.Nil is an answer, not
// a failure; a caller that gave up (its ctx done) says nothing about Redis.
func (g *Guard) call(ctx context.Context, fn func(context.Context) error) error {
	if !g.admit() {
		return errSkipped
	}
	return g.exec(ctx, fn)
}

func (g *Guard) exec(ctx context.Context, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, g.opts.OpTimeout)
	defer cancel()
	err := fn(cctx)
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		g.succeeded()
		return err
	case ctxDone(ctx) != nil:
		return err
	default:
		g.failed(err)
		return err
	}
}

func (g *Guard) succeeded() {
	if g.failures.Load() != 0 {
		g.failures.Store(0)
	}
	if !g.up.Load() && g.up.CompareAndSwap(false, true) {
		g.downSince.Store(0)
	}
	redisUp.Set(1)
}

func (g *Guard) failed(err error) {
	msg := err.Error()
	g.lastErr.Store(&msg)
	if g.failures.Add(1) < int64(g.opts.FailureThreshold) && g.up.Load() {
		return
	}
	now := g.now()
	g.retryAt.Store(now.Add(g.opts.RetryInterval).UnixNano())
	if g.up.CompareAndSwap(true, false) {
		g.downSince.Store(now.UnixNano())
	}
	redisUp.Set(0)
	// While Redis is down every replica's invalidations fail, not only
	// this one's: the cache stays off here until an epoch bump has
	// stranded whatever anyone failed to invalidate.
	g.markDirty()
}

// Healthy reports whether the guard takes Redis for up: it turns false after
// FailureThreshold failed calls in a row (Run's PINGs count) and true again
// at the next success. A Guard that has not talked to Redis yet is healthy.
func (g *Guard) Healthy() bool { return g.up.Load() }

// Status is the guard's state for an operator, e.g. as the detail of
// /readyz. Redis being down does not make the service unready: bookings go
// on without it.
type Status struct {
	RedisUp bool `json:"redis_up"`
	// RateLimit is "distributed" while Redis enforces the limits, and
	// "per-replica" while each replica enforces its share.
	RateLimit string `json:"rate_limit"`
	// CacheBypassed is true while the availability cache is off after a
	// lost invalidation or an outage, until an epoch bump makes it safe.
	CacheBypassed bool      `json:"cache_bypassed"`
	DownSince     time.Time `json:"down_since,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
}

// Status returns the guard's current state.
func (g *Guard) Status() Status {
	s := Status{RedisUp: g.up.Load(), RateLimit: "distributed", CacheBypassed: g.dirty()}
	if !s.RedisUp {
		s.RateLimit = "per-replica"
		if ns := g.downSince.Load(); ns != 0 {
			s.DownSince = time.Unix(0, ns).UTC()
		}
	}
	if p := g.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Run PINGs Redis every HealthInterval until ctx is done, keeping Healthy,
// the parkgate_redis_up gauge and the cache's state current even while no
// request touches Redis, and turning the cache back on (an epoch bump) as
// soon as Redis answers again. It also sweeps idle fallback buckets. Run is
// optional; without it the same happens on the next request.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(g.opts.HealthInterval)
	defer t.Stop()
	for {
		g.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe PINGs Redis regardless of the down state: it is the probe.
func (g *Guard) probe(ctx context.Context) {
	err := g.exec(ctx, func(ctx context.Context) error { return g.rdb.Ping(ctx).Err() })
	if err == nil && g.dirty() {
		g.recoverCache(ctx)
	}
	g.local.sweep(g.now())
}
