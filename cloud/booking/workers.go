package booking

import (
	"context"
	"time"
)

// RunWorkers runs the background work of one replica until ctx ends: ending
// overdue holds, closing their Checkout Sessions, purging idempotency keys
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
		for {
			n, err := s.ExpireDueHolds(ctx, 200)
			if err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("expire holds", "err", err)
				}
				break
			}
			if n < 200 {
				break
			}
		}
		if _, err := s.CloseSessions(ctx, 100); err != nil && ctx.Err() == nil {
			s.Log.Warn("close checkout sessions", "err", err)
		}
		if time.Since(lastPurge) > 10*time.Minute {
			if n, err := s.DB.PurgeKeys(ctx); err != nil {
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
