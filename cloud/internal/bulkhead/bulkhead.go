// Package bulkhead bounds how much work of one key (a lot) runs in one
// replica at once, so that a surge on one key cannot take every shared
// resource (connections, CPU) from the others.
package bulkhead

import (
	"context"
	"sync"
	"time"
)

// PerKey admits at most Cap holders per key at once; a caller over the
// bound waits up to Wait for a place, parked, holding nothing, and is
// refused if none comes free. A key leaves the map when its last holder or
// waiter does, so keys taken from requests before they are checked cannot
// grow it. The zero value is not usable: set Cap and Wait.
type PerKey struct {
	Cap  int
	Wait time.Duration

	mu    sync.Mutex
	slots map[string]*slot
}

type slot struct {
	sem  chan struct{}
	refs int // holders and waiters: the slot leaves the map at zero
}

// Enter takes a place for key, waiting up to Wait; ok is false when none
// came free in time or ctx ended first. leave gives the place back.
func (b *PerKey) Enter(ctx context.Context, key string) (leave func(), ok bool) {
	b.mu.Lock()
	if b.slots == nil {
		b.slots = make(map[string]*slot)
	}
	s := b.slots[key]
	if s == nil {
		s = &slot{sem: make(chan struct{}, b.Cap)}
		b.slots[key] = s
	}
	s.refs++
	wait := b.Wait
	b.mu.Unlock()

	unref := func() {
		b.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(b.slots, key)
		}
		b.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; unref() }, true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; unref() }, true
	case <-t.C:
	case <-ctx.Done():
	}
	unref()
	return nil, false
}

// Len is how many keys have holders or waiters.
func (b *PerKey) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.slots)
}
