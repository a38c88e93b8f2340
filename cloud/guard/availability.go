package guard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The availability cache. Each entry is tagged with the global epoch and the
// lot's version current when the caller read them; a lookup serves an entry
// only while both are still current, and a store succeeds only while they
// are (so a value computed before a change can never be stored after it).
// InvalidateLot bumps the lot's version; a bump of the epoch invalidates
// every lot at once.
//
// A version or epoch that is missing — never set, evicted, or lost in a
// restart — starts at Redis' clock in microseconds rather than at 0 or 1,
// so counting up again can never reach a value that tagged an old entry.

// currentLua returns the value of a version key, creating it if missing.
// A version key lives a day past its last creation (INCR keeps the expiry):
// losing one is safe, as above, and an id that names no lot (asked about
// once) leaves nothing behind for good.
const currentLua = `
local function current(k)
  local v = redis.call('GET', k)
  if not v then
    local t = redis.call('TIME')
    v = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', k, v, 'PX', 86400000)
  end
  return v
end
`

// lookupScript: KEYS epoch, lot version, entry → {epoch, version, value or ""}.
// "" rather than nil for a miss: a Lua false reaches a RESP3 client as a
// boolean, not a nil.
var lookupScript = redis.NewScript(currentLua + `
local e = current(KEYS[1])
local v = current(KEYS[2])
local entry = redis.call('GET', KEYS[3])
if entry then
  local tag = e .. ':' .. v .. ':'
  if string.sub(entry, 1, #tag) == tag then
    return {e, v, string.sub(entry, #tag + 1)}
  end
end
return {e, v, ''}
`)

// storeScript: KEYS epoch, lot version, entry; ARGV epoch, version, value,
// TTL in ms → 1 if stored, 0 if the versions moved on meanwhile.
var storeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[3], ARGV[1] .. ':' .. ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
`)

// bumpScript: moves every key in KEYS to a new version.
var bumpScript = redis.NewScript(currentLua + `
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    redis.call('INCR', k)
  else
    current(k)
  end
end
return #KEYS
`)

// Version is the state of a lot's availability that a lookup saw. Hand it
// back to StoreAvailability unchanged; its zero value stores nothing.
type Version struct {
	epoch, lot string
}

func (g *Guard) epochKey() string               { return g.key("avail", "epoch") }
func (g *Guard) versionKey(lotID string) string { return g.key("avail", "{"+lotID+"}", "ver") }

func (g *Guard) entryKey(lotID string, start, end time.Time) string {
	return g.key("avail", "{"+lotID+"}", strconv.FormatInt(start.UnixNano(), 10), strconv.FormatInt(end.UnixNano(), 10))
}

// Availability looks up the cached availability of lotID for [start, end).
// On a hit it returns the counts and ok. On a miss it returns the Version to
// pass to StoreAvailability once the caller has computed the counts from
// Postgres. If Redis cannot be trusted or reached it returns ok false and a
// zero Version: compute from Postgres and store nothing. Entries are per
// exact window; callers that want more hits round windows first.
func (g *Guard) Availability(ctx context.Context, lotID string, start, end time.Time) (available, total int, version Version, ok bool) {
	if !g.recoverCache(ctx) {
		fallbacks.WithLabelValues(featureAvailability).Inc()
		return 0, 0, Version{}, false
	}
	keys := g.lookupKeys(lotID, start, end)
	var res []any
	err := g.call(ctx, func(ctx context.Context) error {
		var err error
		res, err = g.lookup(ctx, keys, g.pipe.MGet(ctx, keys...))
		return err
	})
	return g.availability(res, err)
}

// CachedAvailability is Availability in the shape of
// cloud.AvailabilityCache: on a miss, a function that stores the counts the
// caller computes under the version read now.
func (g *Guard) CachedAvailability(ctx context.Context, lotID string, start, end time.Time) (available, total int, ok bool, store func(available, total int)) {
	available, total, ver, ok := g.Availability(ctx, lotID, start, end)
	return available, total, ok, func(available, total int) {
		g.StoreAvailability(ctx, lotID, start, end, ver, available, total)
	}
}

// lookup turns the answer to an MGET of keys (lookupKeys) into
// lookupScript's, running the script only when a version is missing.
func (g *Guard) lookup(ctx context.Context, keys []string, mget *redis.SliceCmd) ([]any, error) {
	vals, err := mget.Result()
	if err != nil {
		return nil, err
	}
	if res, ok := lookupFromMGet(vals); ok {
		return res, nil
	}
	return lookupScript.Run(ctx, g.pipe, keys).Slice()
}

// lookupFromMGet answers as lookupScript does from an MGET of its three
// keys, when the epoch and the lot's version both exist: one plain read, a
// fifteenth of a script's time in Redis (commandstats here: GET 0.9 µs a
// call, EVALSHA 13 µs), which in a surge Redis spends on every refused
// driver. ok is false when either is missing: only the script, which makes
// them, can answer then.
func lookupFromMGet(vals []any) (res []any, ok bool) {
	if len(vals) != 3 {
		return nil, false
	}
	e, ok1 := vals[0].(string)
	v, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return nil, false
	}
	value := ""
	if entry, found := vals[2].(string); found {
		if tag := e + ":" + v + ":"; strings.HasPrefix(entry, tag) {
			value = entry[len(tag):]
		}
	}
	return []any{e, v, value}, true
}

func (g *Guard) lookupKeys(lotID string, start, end time.Time) []string {
	return []string{g.epochKey(), g.versionKey(lotID), g.entryKey(lotID, start, end)}
}

// availability reads the answer of lookupScript, and counts what it found.
func (g *Guard) availability(res []any, err error) (available, total int, version Version, ok bool) {
	// An invalidation lost while the lookup ran may concern this entry.
	if err != nil || g.dirty() {
		fallbacks.WithLabelValues(featureAvailability).Inc()
		return 0, 0, Version{}, false
	}
	v, value, err := parseLookup(res)
	if err != nil {
		fallbacks.WithLabelValues(featureAvailability).Inc()
		return 0, 0, Version{}, false
	}
	if value == "" {
		cacheLookups.WithLabelValues("availability", "miss").Inc()
		return 0, 0, v, false
	}
	a, t, found := strings.Cut(value, ",")
	available, err1 := strconv.Atoi(a)
	total, err2 := strconv.Atoi(t)
	if !found || err1 != nil || err2 != nil {
		cacheLookups.WithLabelValues("availability", "miss").Inc()
		return 0, 0, v, false
	}
	cacheLookups.WithLabelValues("availability", "hit").Inc()
	return available, total, v, true
}

func parseLookup(res []any) (Version, string, error) {
	if len(res) != 3 {
		return Version{}, "", fmt.Errorf("guard: lookup returned %d values", len(res))
	}
	var s [3]string
	for i, x := range res {
		str, ok := x.(string)
		if !ok {
			return Version{}, "", fmt.Errorf("guard: lookup value %d is %T", i, x)
		}
		s[i] = str
	}
	return Version{epoch: s[0], lot: s[1]}, s[2], nil
}

// StoreAvailability caches counts computed from Postgres for lotID and
// [start, end), tagged with the version Availability returned before the
// computation began. If the lot changed since (InvalidateLot ran), nothing
// is stored: the counts may predate the change.
func (g *Guard) StoreAvailability(ctx context.Context, lotID string, start, end time.Time, version Version, available, total int) {
	if version == (Version{}) || g.dirty() {
		return
	}
	value := strconv.Itoa(available) + "," + strconv.Itoa(total)
	ttl := strconv.FormatInt(g.opts.AvailabilityTTL.Milliseconds(), 10)
	err := g.call(ctx, func(ctx context.Context) error {
		return storeScript.Run(ctx, g.pipe, []string{g.epochKey(), g.versionKey(lotID), g.entryKey(lotID, start, end)},
			version.epoch, version.lot, value, ttl).Err()
	})
	if err != nil {
		fallbacks.WithLabelValues(featureAvailability).Inc()
	}
}

// InvalidateLot makes every cached availability of the lots stale. Call it
// on every reservation change (hold, confirm, expire, release, refund,
// check-out) after the transaction commits: a lookup in between could
// otherwise cache the old state under the new version.
//
// If Redis does not take the invalidation, old entries may sit in a Redis
// that comes back. So a failed invalidation — and Redis being down
// (FailureThreshold failures in a row), since then every replica's
// invalidations fail — turns this Guard's cache off
// (parkgate_guard_cache_bypassed, Status.CacheBypassed) until it has bumped
// the global epoch, which strands every entry stored before the bump; the
// first lookup or Run tick after Redis answers again does it. Other
// replicas read the epoch on every lookup, so they stop serving old entries
// the moment it moves. What remains: a replica whose invalidation failed
// while its peers still reach Redis (a partition, a lone timeout, a crash
// before its bump) leaves them serving that lot's old entries until its
// bump, and at most AvailabilityTTL; and a Redis
// restored from a persisted snapshot brings old entries back the same way —
// run the guard's Redis without persistence, since everything in it can be
// rebuilt. A Redis restarted empty loses the entries with the versions, and
// versions restart from its clock, so nothing old is found.
func (g *Guard) InvalidateLot(ctx context.Context, lotIDs ...string) {
	if len(lotIDs) == 0 {
		return
	}
	keys := make([]string, len(lotIDs))
	for i, id := range lotIDs {
		keys[i] = g.versionKey(id)
	}
	// Not cut short by a client that hung up: the change has committed.
	ctx = context.WithoutCancel(ctx)
	err := g.call(ctx, func(ctx context.Context) error {
		return bumpScript.Run(ctx, g.pipe, keys).Err()
	})
	if err != nil {
		// Lost, or perhaps applied: either way no entry may be trusted
		// until the epoch moves.
		fallbacks.WithLabelValues(featureAvailability).Inc()
		g.markDirty()
	}
}

// markDirty turns the availability cache off until the next epoch bump.
func (g *Guard) markDirty() {
	g.failGen.Add(1)
	cacheBypassed.Set(1)
}

// dirty reports whether an invalidation may have been lost since the last
// epoch bump.
func (g *Guard) dirty() bool { return g.failGen.Load() != g.cleanGen.Load() }

// recoverCache bumps the epoch if the cache is dirty, and reports whether
// the cache may be used. One caller bumps at a time; the others bypass the
// cache meanwhile rather than queue.
func (g *Guard) recoverCache(ctx context.Context) bool {
	if !g.dirty() {
		return true
	}
	if !g.bumping.TryLock() {
		return false
	}
	defer g.bumping.Unlock()
	// A failure recorded after this read is not covered by the bump below,
	// and leaves the cache dirty for the next one.
	gen := g.failGen.Load()
	err := g.call(context.WithoutCancel(ctx), func(ctx context.Context) error {
		return bumpScript.Run(ctx, g.pipe, []string{g.epochKey()}).Err()
	})
	if err != nil {
		return false
	}
	g.cleanGen.Store(gen)
	// Failures raise the gauge after counting themselves, so checking after
	// lowering it cannot leave it low while dirty.
	cacheBypassed.Set(0)
	if g.dirty() {
		cacheBypassed.Set(1)
		return false
	}
	return true
}

func isMiss(err error) bool { return errors.Is(err, redis.Nil) }
