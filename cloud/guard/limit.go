package guard

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Limit is a GCRA (token bucket) limit: Rate requests per second on
// average, up to Burst at once. The zero Limit means "use the default";
// Unlimited turns limiting off.
type Limit struct {
	Rate  float64 // per second
	Burst int
}

// Unlimited is a Limit that allows everything.
var Unlimited = Limit{Rate: math.Inf(1)}

func (l Limit) String() string {
	if l.unlimited() {
		return "off"
	}
	return strconv.FormatFloat(l.Rate, 'f', -1, 64) + "/" + strconv.Itoa(l.Burst)
}

func (l Limit) unlimited() bool { return math.IsInf(l.Rate, 1) }

// orDefault fills a zero or nonsensical Limit from def, and a missing burst
// from the rate, so every Limit the guard uses allows at least one request.
func (l Limit) orDefault(def Limit) Limit {
	if l.unlimited() {
		return l
	}
	if !(l.Rate > 0) {
		return def
	}
	if l.Burst < 1 {
		l.Burst = max(1, int(math.Ceil(l.Rate)))
	}
	return l
}

// gcra converts to redis_rate's integer form. A whole rate is n per second;
// a fractional one is one per 1/rate, which is the same emission interval.
func (l Limit) gcra() redis_rate.Limit {
	if l.Rate >= 1 && l.Rate == math.Trunc(l.Rate) && l.Rate <= math.MaxInt32 {
		return redis_rate.Limit{Rate: int(l.Rate), Period: time.Second, Burst: l.Burst}
	}
	return redis_rate.Limit{Rate: 1, Period: time.Duration(float64(time.Second) / l.Rate), Burst: l.Burst}
}

// perReplica is this replica's share of l while Redis is unreachable.
func (l Limit) perReplica(replicas int) Limit {
	if l.unlimited() || replicas <= 1 {
		return l
	}
	return Limit{Rate: l.Rate / float64(replicas), Burst: max(1, l.Burst/replicas)}
}

// ParseLimit parses "RATE/BURST" (RATE per second, may be fractional),
// "RATE" (burst = RATE rounded up), or "off".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return Unlimited, nil
	}
	rate, burst, hasBurst := strings.Cut(s, "/")
	r, err := strconv.ParseFloat(strings.TrimSpace(rate), 64)
	if err != nil || !(r > 0) || math.IsInf(r, 0) {
		return Limit{}, fmt.Errorf("guard: bad limit %q: rate must be a positive number", s)
	}
	l := Limit{Rate: r}
	if hasBurst {
		b, err := strconv.Atoi(strings.TrimSpace(burst))
		if err != nil || b < 1 {
			return Limit{}, fmt.Errorf("guard: bad limit %q: burst must be a positive integer", s)
		}
		l.Burst = b
	}
	return l.orDefault(Limit{}), nil
}

// ParseLimits parses per-lot limits from configuration:
// "lot-a=100/200,lot-b=5/10,lot-c=off". An empty string is no overrides.
func ParseLimits(s string) (map[string]Limit, error) {
	out := make(map[string]Limit)
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, spec, ok := strings.Cut(item, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("guard: bad lot limit %q: want LOT=RATE/BURST", item)
		}
		l, err := ParseLimit(spec)
		if err != nil {
			return nil, err
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("guard: lot %q has two limits", id)
		}
		out[id] = l
	}
	return out, nil
}

const (
	scopeLot    = "lot"
	scopeClient = "client"
)

// AllowLot takes one request from lotID's limit (its LotRates entry or
// LotRate) and reports whether it may proceed; if not, retryAfter is when
// the next one would be allowed. The limit is shared by every replica
// through Redis; while Redis is unreachable this replica enforces its share
// (see Options.Replicas). An empty lotID is not limited.
func (g *Guard) AllowLot(ctx context.Context, lotID string) (ok bool, retryAfter time.Duration) {
	if lotID == "" {
		return true, 0
	}
	return g.allow(ctx, scopeLot, lotID, g.lotLimit(lotID))
}

// AllowClient is AllowLot for the per-client limit (ClientRate), keyed by
// whatever identifies a client: its IP, an API key. An empty clientID is
// not limited.
func (g *Guard) AllowClient(ctx context.Context, clientID string) (ok bool, retryAfter time.Duration) {
	if clientID == "" {
		return true, 0
	}
	return g.allow(ctx, scopeClient, clientID, g.opts.ClientRate)
}

func (g *Guard) allow(ctx context.Context, scope, id string, l Limit) (bool, time.Duration) {
	if l.unlimited() {
		return true, 0
	}
	key := scope + ":" + id
	if g.leases.take(key, g.now()) {
		return true, 0 // a token Admit leased
	}
	if wait := g.denied.until(key, g.now()); wait > 0 {
		rateLimited.WithLabelValues(scope).Inc()
		return false, wait
	}
	// Redis measures its retry-after from when it evaluated the request,
	// which is after now: counted from now, the memo ends no later than
	// Redis' refusal does.
	asked := g.now()
	var res *redis_rate.Result
	err := g.call(ctx, func(ctx context.Context) error {
		var err error
		res, err = g.limiter.Allow(ctx, g.key(scope, id), l.gcra())
		return err
	})
	if err != nil {
		fallbacks.WithLabelValues(featureRateLimit).Inc()
		ok, retry := g.local.allow(key, l.perReplica(g.opts.Replicas), g.now())
		if !ok {
			rateLimited.WithLabelValues(scope).Inc()
		}
		return ok, retry
	}
	if res.Allowed > 0 {
		return true, 0
	}
	rateLimited.WithLabelValues(scope).Inc()
	g.denied.remember(key, asked, res.RetryAfter)
	return false, res.RetryAfter
}

// denyMemo remembers, per limit key, until when Redis refuses it. GCRA
// refuses every request before its retry-after (other replicas can only
// push that time later, and a refused request changes nothing), so a
// replica that answers those itself is exact, and a surge's excess costs
// no Redis round trip: in a stadium rush that is most of the requests.
type denyMemo struct {
	mu        sync.Mutex
	at        map[string]time.Time
	nextSweep int
}

// until reports how long key stays refused; 0 when Redis must be asked.
func (d *denyMemo) until(key string, now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.at[key]
	if !ok {
		return 0
	}
	if !now.Before(t) {
		delete(d.at, key)
		return 0
	}
	return t.Sub(now)
}

// remember records that key is refused for wait from now.
func (d *denyMemo) remember(key string, now time.Time, wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil {
		d.at = make(map[string]time.Time)
	}
	if len(d.at) >= max(d.nextSweep, 1024) {
		// Keys are unbounded (client IPs): drop the lapsed ones as the
		// map grows.
		for k, t := range d.at {
			if !now.Before(t) {
				delete(d.at, k)
			}
		}
		d.nextSweep = 2 * len(d.at)
	}
	d.at[key] = now.Add(wait)
}

// localLimiter is the per-replica fallback: token buckets in memory.
type localLimiter struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	nextSweep int
}

type bucket struct {
	tokens float64
	last   time.Time
	full   time.Time // when the bucket will have refilled: then it can go
}

func newLocalLimiter() *localLimiter {
	return &localLimiter{buckets: make(map[string]*bucket), nextSweep: 1024}
}

func (ll *localLimiter) allow(key string, l Limit, now time.Time) (bool, time.Duration) {
	if l.unlimited() {
		return true, 0
	}
	ll.mu.Lock()
	defer ll.mu.Unlock()
	b, ok := ll.buckets[key]
	if !ok {
		// Client keys are unbounded (IPs): sweep as the map grows, so an
		// outage under many clients cannot grow it without limit.
		if len(ll.buckets) >= ll.nextSweep {
			ll.sweepLocked(now)
			ll.nextSweep = max(1024, 2*len(ll.buckets))
		}
		b = &bucket{tokens: float64(l.Burst), last: now}
		ll.buckets[key] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(float64(l.Burst), b.tokens+dt*l.Rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		b.full = now.Add(seconds((float64(l.Burst) - b.tokens) / l.Rate))
		return true, 0
	}
	return false, seconds((1 - b.tokens) / l.Rate)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// sweep drops the buckets that have refilled: one that is dropped starts
// full next time, which is what it would have been.
func (ll *localLimiter) sweep(now time.Time) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.sweepLocked(now)
}

func (ll *localLimiter) sweepLocked(now time.Time) {
	for k, b := range ll.buckets {
		if !now.Before(b.full) {
			delete(ll.buckets, k)
		}
	}
}
