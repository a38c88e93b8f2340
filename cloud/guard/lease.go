package guard

import (
	"sync"
	"time"
)

// leaseShare sets the size of a lease: a limit's burst divided by it, at
// least one token. A sixteenth keeps what a lease can skew small next to
// the burst the limit already allows, while a calm lot's or client's
// requests find a token here most of the time.
const leaseShare = 16

// minLeaseLife is the shortest a lease lives, so that a lifted limit
// (millions a second, whose tokens refill in microseconds) still serves
// more than the request that took it.
const minLeaseLife = time.Second

// leaseSize is how many tokens Admit asks of l at once: a request's own
// and, when l's burst allows, some for the next requests of the same lot
// or client on this replica.
func (l Limit) leaseSize() int {
	if l.unlimited() {
		return 1
	}
	return max(1, l.Burst/leaseShare)
}

// leaseLife is how long n tokens taken from l stay usable here: as long
// as l takes to refill them, and at least minLeaseLife. Never less than
// the refill time, so leases that lapse unused are charged to a sporadic
// lot or client no faster than the limit's rate (n tokens at most per n
// emission intervals) and cannot by themselves make it refuse; what lapsed
// is missing from the bucket until it refills, the "below" of the bound
// on leases.
func (l Limit) leaseLife(n int) time.Duration {
	life := seconds(float64(n) / l.Rate)
	return max(life, minLeaseLife)
}

// leases are the tokens this replica took from Redis' limits ahead of use,
// per limit key (scope:id), each with the time it lapses. A request that
// finds a token of each limit it needs here spends them without a round
// trip: on a calm lot, most requests (see Guard.Leased).
//
// A lease lets the fleet exceed a limit by about its own size per replica
// at most: its tokens were taken from the shared bucket when leased, so
// they are counted once, only early, and the worst a replica can do is
// spend a whole lease just as the bucket has refilled behind it. Nor does
// it refuse by more: tokens one replica holds are missing from the bucket
// for the others, about one lease's worth per replica, for at most its
// life. (About: a token given back may join a newer lease, and a lease
// whose answer timed out after Redis granted it is lost, as a single
// token was before.)
type leases struct {
	mu        sync.Mutex
	m         map[string]lease
	nextSweep int
	// asking holds the keys whose lease is being asked of Redis: the
	// requests that find it empty meanwhile ask for their own token
	// alone, so a replica holds one lease per key, not one per request
	// that came at once.
	asking map[string]struct{}
}

type lease struct {
	n     int
	until time.Time
}

// take spends one token of key's lease, if it has one that has not
// lapsed.
func (ls *leases) take(key string, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.takeLocked(key, now)
}

func (ls *leases) takeLocked(key string, now time.Time) bool {
	l, ok := ls.m[key]
	if !ok {
		return false
	}
	if !now.Before(l.until) {
		delete(ls.m, key)
		return false
	}
	if l.n <= 1 {
		delete(ls.m, key)
	} else {
		l.n--
		ls.m[key] = l
	}
	return true
}

// takeBoth spends a token of each of a and b, or of neither; an empty key
// needs none.
func (ls *leases) takeBoth(a, b string, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if a != "" && !ls.validLocked(a, now) || b != "" && !ls.validLocked(b, now) {
		return false
	}
	if a != "" {
		ls.takeLocked(a, now)
	}
	if b != "" {
		ls.takeLocked(b, now)
	}
	return true
}

func (ls *leases) validLocked(key string, now time.Time) bool {
	l, ok := ls.m[key]
	return ok && now.Before(l.until)
}

// giveBack returns a token taken for a request that in the end spent
// none (a replay, a window found full): it stays usable until the lease it
// came from lapses, or, if a lease was taken since, joins that one and
// lives as long (see add).
func (ls *leases) giveBack(key string, now time.Time, until time.Time) {
	ls.add(key, 1, until, now)
}

// add records n more tokens of key, usable until until; tokens still
// held of an earlier lease join them and take the later life.
func (ls *leases) add(key string, n int, until, now time.Time) {
	if n <= 0 || !now.Before(until) {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = make(map[string]lease)
	}
	l, ok := ls.m[key]
	if !ok && len(ls.m) >= max(ls.nextSweep, 1024) {
		// Client keys are unbounded (IPs): drop the lapsed leases as
		// the map grows.
		for k, l := range ls.m {
			if !now.Before(l.until) {
				delete(ls.m, k)
			}
		}
		ls.nextSweep = 2 * len(ls.m)
	}
	if ok && now.Before(l.until) {
		l.n += n
		if until.After(l.until) {
			l.until = until
		}
	} else {
		l = lease{n: n, until: until}
	}
	ls.m[key] = l
}

// takeOrAsk spends one token of key's lease if it has one; if not, it
// reports how many tokens the caller should ask Redis for: size, when no
// other request is asking for a lease of key already (the caller must then
// call asked), else one. One lock for both, so a lease stored between a
// failed take and the ask cannot be missed and a second one asked for.
func (ls *leases) takeOrAsk(key string, size int, now time.Time) (taken bool, until time.Time, want int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	until = ls.m[key].until
	if ls.takeLocked(key, now) {
		return true, until, 0
	}
	if size <= 1 {
		return false, time.Time{}, 1
	}
	if _, busy := ls.asking[key]; busy {
		return false, time.Time{}, 1
	}
	if ls.asking == nil {
		ls.asking = make(map[string]struct{})
	}
	ls.asking[key] = struct{}{}
	return false, time.Time{}, size
}

// asked ends what takeOrAsk began, whatever Redis answered.
func (ls *leases) asked(key string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.asking, key)
}
