package booking

import (
	"context"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// cachedLot returns a lot this replica has read before.
func (s *Service) cachedLot(id string) (cloud.Lot, bool) {
	s.lotsMu.RLock()
	defer s.lotsMu.RUnlock()
	l, ok := s.lots[id]
	return l, ok
}

// Lot returns a lot, from the cache when it has been read before.
func (s *Service) Lot(ctx context.Context, id string) (cloud.Lot, error) {
	if l, ok := s.cachedLot(id); ok {
		return l, nil
	}
	l, err := s.Store.Lot(ctx, id)
	if err != nil {
		return l, err
	}
	s.lotsMu.Lock()
	s.lots[id] = l
	s.lotsMu.Unlock()
	return l, nil
}

// holdGroup is the lot's queue of holds to write: the requests of one lot
// that arrive while its previous holds are being written go together, in
// one transaction (cloud.ReservationStore.Holds). They would take turns on
// the lot's row anyway, each waiting for the one before to commit; a surge
// on one lot thus costs one commit per batch, not one per driver.
func (s *Service) holdGroup(lotID string) *groupcommit.Group[cloud.HoldParams, cloud.HoldOutcome] {
	s.lotsMu.RLock()
	g, ok := s.holds[lotID]
	s.lotsMu.RUnlock()
	if ok {
		return g
	}
	s.lotsMu.Lock()
	defer s.lotsMu.Unlock()
	if g, ok = s.holds[lotID]; !ok {
		g = &groupcommit.Group[cloud.HoldParams, cloud.HoldOutcome]{
			Write: func(ctx context.Context, batch []cloud.HoldParams) ([]cloud.HoldOutcome, error) {
				return s.writeHolds(ctx, lotID, batch), nil
			},
			MaxBatch:   64,
			MaxWriters: 1, // a second writer would only wait for the first's row lock
		}
		s.holds[lotID] = g
	}
	return g
}

// writeHolds writes one batch of a lot's holds under the Redis lock of the
// lot and the windows the batch spans: one lock for the batch, taken once.
// The lot's cached availability is invalidated once for the batch, before
// any of its callers is answered; the lock is released without making them
// wait for it.
func (s *Service) writeHolds(ctx context.Context, lotID string, batch []cloud.HoldParams) []cloud.HoldOutcome {
	var release func()
	if s.Guard != nil {
		start, end := batch[0].StartsAt, batch[0].EndsAt
		for _, p := range batch[1:] {
			if p.StartsAt.Before(start) {
				start = p.StartsAt
			}
			if p.EndsAt.After(end) {
				end = p.EndsAt
			}
		}
		// The lock only spreads a surge out; when it is busy past its wait,
		// or Redis is away, go on: the lot row lock in Postgres orders the
		// writers and the exclusion constraint keeps them honest.
		if r, err := s.Guard.Lock(ctx, lotID, start, end); err == nil {
			release = r
		}
	}
	out := s.Store.Holds(ctx, batch)
	if release != nil {
		go release()
	}
	for _, o := range out {
		if o.Err == nil && o.Outcome == cloud.HoldHeld {
			s.invalidate(ctx, lotID)
			break
		}
	}
	return out
}
