package booking

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// RunWorkers runs the background work of one replica until ctx ends: ending
// overdue holds, closing their Checkout Sessions, asking again for the
// refunds of cancellations whose own call failed, pricing overstays and
// opening their sessions, purging idempotency keys
// past their 24 hours. Every part is safe to run in several replicas at once.
func (s *Service) RunWorkers(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastPurge := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.ExpireDueHolds(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("expire holds", "err", err)
		}
		if _, err := s.CloseSessions(ctx, 100); err != nil && ctx.Err() == nil {
			s.Log.Warn("close checkout sessions", "err", err)
		}
		if _, err := s.ChargeOverstays(ctx, 100); err != nil && ctx.Err() == nil {
			s.Log.Warn("charge overstays", "err", err)
		}
		if _, err := s.RetryRefunds(ctx, 30*time.Second, 100); err != nil && ctx.Err() == nil {
			s.Log.Warn("retry refunds", "err", err)
		}
		if _, err := s.RetryOperatorRefunds(ctx, 30*time.Second, 100); err != nil && ctx.Err() == nil {
			s.Log.Warn("retry operator refunds", "err", err)
		}
		if time.Since(lastPurge) > 10*time.Minute {
			if n, err := s.Store.PurgeKeys(ctx); err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("purge idempotency keys", "err", err)
				}
			} else {
				lastPurge = time.Now()
				if n > 0 {
					s.Log.Info("purged idempotency keys", "n", n)
				}
			}
		}
	}
}

// ExpireDueHolds ends the PENDING holds whose time is up and reports how
// many it ended. A lot's holds end together, in a transaction that asks each
// hold's status again under the lot's lock (Store.ExpireDue), so replicas
// running this at once, or a payment confirming the same hold, never
// fight: one wins, the others change nothing. A lot still busy after a
// short wait is left for the next call.
func (s *Service) ExpireDueHolds(ctx context.Context) (int, error) {
	// The lots it returns have had holds end, also on an error: their
	// cached availability is stale either way.
	ended, err := s.Store.ExpireDue(ctx)
	n := 0
	for _, k := range ended {
		n += k
	}
	transitions.WithLabelValues(string(cloud.StatusExpired)).Add(float64(n))
	s.invalidateSilent(ctx, slices.Sorted(maps.Keys(ended))...) // PENDING → EXPIRED: no edge had it; one round trip
	return n, err
}

// CloseSessions expires at Stripe the Checkout Sessions of holds that ended,
// so Stripe stops taking money for them. A session found paid is left to
// its completed event, which refunds it.
func (s *Service) CloseSessions(ctx context.Context, limit int) (int, error) {
	if s.Payments == nil {
		return 0, nil
	}
	open, err := s.Store.SessionsToClose(ctx, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range open {
		err := s.Payments.ExpireSession(ctx, o.SessionID, "parkgate-expire-"+o.ReservationID)
		if err != nil && !errors.Is(err, cloud.ErrSessionCompleted) {
			return n, fmt.Errorf("expire session %s: %w", o.SessionID, err)
		}
		if err := s.Store.SetPaymentFields(ctx, o.ReservationID, cloud.PaymentFields{SessionClosed: true}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
