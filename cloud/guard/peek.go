package guard

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Peeked is what PeekState found.
type Peeked struct {
	// Response is the response stored under the key, when Stored.
	Response StoredResponse
	Stored   bool
	// Available and Total are the lot's cached counts for the window, when
	// Cached; on a miss Version is what to hand StoreAvailability.
	Available, Total int
	Cached           bool
	Version          Version
}

// PeekState is LoadResponse and, when availability is true, Availability
// together, in one round trip and one wait: a booking asks both before
// anything else, and in a surge every round trip of every refused driver is
// paid for by the other lots' requests waiting for the CPU. Each half
// degrades as its own method does. Ask for availability only for a lot known
// to exist: a lookup makes the lot's version key.
func (g *Guard) PeekState(ctx context.Context, key, lotID string, start, end time.Time, availability bool) Peeked {
	cache := availability && g.recoverCache(ctx)
	if availability && !cache {
		fallbacks.WithLabelValues(featureAvailability).Inc()
	}
	var (
		sent            bool
		raw             []byte
		res             []any
		getErr, lookErr error
	)
	err := g.call(ctx, func(ctx context.Context) error {
		b := g.pipe.build()
		get := b.Get(ctx, g.idemKey(key))
		cmds := []redis.Cmder{get}
		var look *redis.SliceCmd
		var keys []string
		if cache {
			keys = g.lookupKeys(lotID, start, end)
			look = b.MGet(ctx, keys...)
			cmds = append(cmds, look)
		}
		// On an error here the commands are the writer's still: read none.
		if err := g.pipe.sendAll(ctx, cmds...); err != nil {
			return err
		}
		sent = true
		raw, getErr = get.Bytes()
		if look != nil {
			res, lookErr = g.lookup(ctx, keys, look)
		}
		if getErr != nil && !isMiss(getErr) {
			return getErr
		}
		return lookErr
	})
	if !sent {
		getErr, lookErr = err, err
	}
	var p Peeked
	p.Response, p.Stored = storedResponse(raw, getErr)
	if cache {
		p.Available, p.Total, p.Version, p.Cached = g.availability(res, lookErr)
	}
	return p
}

// Peek is PeekState in the shape of cloud.Guard: the stored response, and
// whether the window is known full with the function that records it full
// (the version read now, so a change committed before the call leaves the
// record unreachable).
func (g *Guard) Peek(ctx context.Context, key, lotID string, start, end time.Time, availability bool) (stored StoredResponse, ok, full bool, markFull func(total int)) {
	p := g.PeekState(ctx, key, lotID, start, end, availability)
	if !availability {
		return p.Response, p.Stored, false, nil
	}
	return p.Response, p.Stored, p.Cached && p.Available <= 0, func(total int) {
		g.StoreAvailability(ctx, lotID, start, end, p.Version, 0, total)
	}
}
