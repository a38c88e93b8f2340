package relay

import (
	"context"
	"crypto/ed25519"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// IngestStore is what the ingest needs of the store: where events go and
// the keys that must have signed them.
type IngestStore interface {
	cloud.GateEventStore
	cloud.EdgeKeys
}

// keyCache holds each lot's registered keys for a while, so verifying an
// event costs no database round trip. A miss reloads the lot's keys, so an
// event signed by a key registered a moment ago is applied: an edge
// publishes only after its registration committed, so any load that began
// after the event arrived sees the key. Loads that began after an event
// arrived answer its miss without another, which keeps a flood of forged
// events from turning into a flood of queries.
type keyCache struct {
	store cloud.EdgeKeys
	ttl   time.Duration
	now   func() time.Time

	mu   sync.Mutex
	lots map[string]*lotKeys // only lots that exist; entries are small
}

type lotKeys struct {
	load   sync.Mutex // one load per lot at a time
	mu     sync.Mutex
	keys   []ed25519.PublicKey
	loaded time.Time // when the load that read keys began; zero: never
}

func newKeyCache(store cloud.EdgeKeys, ttl time.Duration) *keyCache {
	return &keyCache{store: store, ttl: ttl, now: time.Now, lots: map[string]*lotKeys{}}
}

func (c *keyCache) entry(lot string) *lotKeys {
	c.mu.Lock()
	defer c.mu.Unlock()
	lk := c.lots[lot]
	if lk == nil {
		lk = &lotKeys{}
		c.lots[lot] = lk
	}
	return lk
}

func (lk *lotKeys) snapshot() ([]ed25519.PublicKey, time.Time) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	return lk.keys, lk.loaded
}

// verify returns nil when a key of the lot signed e, which arrived at
// received; protocol.ErrBadSignature when none did; or the store's error
// (not_found for an unknown lot) when the keys could not be read.
func (c *keyCache) verify(ctx context.Context, lot string, e *protocol.GateEvent, received time.Time) error {
	lk := c.entry(lot)
	keys, loaded := lk.snapshot()
	fresh := !loaded.IsZero() && c.now().Sub(loaded) < c.ttl
	if fresh && e.Verify(keys) == nil {
		return nil
	}
	if fresh && loaded.After(received) {
		return protocol.ErrBadSignature // read after it arrived: reading again finds nothing new
	}
	lk.load.Lock()
	defer lk.load.Unlock()
	// Another event's miss may have reloaded while this one waited.
	if keys, loaded = lk.snapshot(); loaded.After(received) && c.now().Sub(loaded) < c.ttl {
		return e.Verify(keys)
	}
	start := c.now()
	keys, err := c.store.EdgeKeys(ctx, lot)
	if err != nil {
		if cloud.ErrorCode(err) == cloud.ENotFound {
			c.mu.Lock()
			delete(c.lots, lot) // keep no entry for a lot id a forger made up
			c.mu.Unlock()
		}
		return err
	}
	lk.mu.Lock()
	lk.keys, lk.loaded = keys, start
	lk.mu.Unlock()
	return e.Verify(keys)
}
