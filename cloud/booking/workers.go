package booking

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parkgate/parkgate/cloud"
)

// RunWorkers runs the background work of one replica until ctx ends, in
// two loops, each once every tick:
//   - the store's: ending overdue holds, purging idempotency keys past
//     their 24 hours and the provider's refusals past their day;
//   - the payment provider's: closing ended holds' Checkout Sessions,
//     opening overstays' sessions, asking again for the refunds of
//     cancellations and operators whose own call failed.
//
// Two loops so that the provider's latency, or an outage it takes a
// timeout to see, never holds up the store's work: in one loop, a hundred
// sessions to close at a third of a second each (reckoned, not measured:
// Stripe's usual latency) would hold back the next tick's expiry by half a
// minute (TestWorkersExpireWhileStripeStuck).
//
// The store's work is safe in every replica at once (a lot's holds end
// under its lock). The provider's is done by one replica a pass, whichever
// takes the lead first (Store.LeadProviderWork): every replica reads the
// same queues, so each would ask Stripe the same things, spending
// Stripe's rate limit, which the holds' own Checkout calls share, once
// per replica, and two asking at the same moment collide on the
// idempotency key, which ends the later's pass as an outage would
// (TestProviderWorkOneReplicaAPass). Were two to overlap all the same (a
// leader whose connection was cut carries on its pass), each call is
// under its idempotency key and Stripe acts once.
func (s *Service) RunWorkers(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		var keysPurged, retriesPurged time.Time
		tick(ctx, every, func() {
			if _, err := s.ExpireDueHolds(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("expire holds", "err", err)
			}
			s.purgeEvery(ctx, &keysPurged, "idempotency keys", s.Store.PurgeKeys)
			s.purgeEvery(ctx, &retriesPurged, "provider retries", s.Store.PurgeProviderRetries)
		})
	}()
	go func() {
		defer wg.Done()
		tick(ctx, every, func() { s.providerPass(ctx) })
	}()
	wg.Wait()
}

// providerPass is one pass of the provider's work, if this replica takes
// the lead for it.
func (s *Service) providerPass(ctx context.Context) {
	release, lead, err := s.Store.LeadProviderWork(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("lead provider work", "err", err)
		}
		return
	}
	if !lead {
		return // another replica's pass
	}
	defer release()
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
}

// tick calls work every interval until ctx ends; a call that overruns its
// tick delays the next, never overlaps it.
func tick(ctx context.Context, every time.Duration, work func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		work()
	}
}

// purgeEvery runs purge once ten minutes have passed since *last, and
// again at the next tick if it fails.
func (s *Service) purgeEvery(ctx context.Context, last *time.Time, what string, purge func(context.Context) (int64, error)) {
	if time.Since(*last) < 10*time.Minute {
		return
	}
	n, err := purge(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("purge "+what, "err", err)
		}
		return
	}
	*last = time.Now()
	if n > 0 {
		s.Log.Info("purged "+what, "n", n)
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

// sessionsInFlight is how many Checkout Sessions CloseSessions expires at
// once: Stripe answers in a few hundred milliseconds, so one at a time
// closes about three a second. At 20 ms a call, four at once closed 149-171
// a second against 40 one at a time (BenchmarkCloseSessions); at Stripe's
// latency that is about a dozen a second (reckoned), from the one replica
// leading the pass, within Stripe's rate limit (100 requests a second in
// live mode, 25 in test mode), which the holds' own calls share; a 429
// ends the pass as an outage does.
const sessionsInFlight = 4

// CloseSessions expires at Stripe the Checkout Sessions of holds that ended,
// so Stripe stops taking money for them, a few at once, and reports how
// many it closed. A session found paid is left to its completed event,
// which refunds it. One Stripe refuses is held back (deferRefused) and the
// rest go on; Stripe away ends the pass, for the next tick.
func (s *Service) CloseSessions(ctx context.Context, limit int) (int, error) {
	if s.Payments == nil {
		return 0, nil
	}
	open, err := s.Store.SessionsToClose(ctx, limit)
	if err != nil {
		return 0, err
	}
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sessionsInFlight)
	for _, o := range open {
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // the pass has ended; the error that ended it is returned
			}
			err := s.Payments.ExpireSession(gctx, o.SessionID, "parkgate-expire-"+o.ReservationID)
			if err != nil && !errors.Is(err, cloud.ErrSessionCompleted) {
				return s.deferRefused(gctx, cloud.WorkCloseSession, o.ReservationID,
					fmt.Errorf("expire session %s: %w", o.SessionID, err))
			}
			if err := s.Store.SetPaymentFields(gctx, o.ReservationID, cloud.PaymentFields{SessionClosed: true}); err != nil {
				return err
			}
			n.Add(1)
			return nil
		})
	}
	err = g.Wait()
	return int(n.Load()), err
}

// deferRefused holds a reservation back from work's queue when err is its
// own: the payment provider refusing its request, which it will refuse
// again (a session it does not know, an amount it will not take), or a
// request the client would not send for it (stripepay's invalid). It then
// returns nil so the queue goes on past it: asked first every tick, it had
// stopped its queue for good. Any other error (the provider or the store
// away, Stripe refusing parkgate's key: what every next item would meet
// too) is returned, to end the pass.
func (s *Service) deferRefused(ctx context.Context, work cloud.ProviderWork, reservationID string, err error) error {
	if !itsOwn(err) {
		return err
	}
	return s.deferWork(ctx, work, reservationID, err)
}

// itsOwn reports whether err is about the one request it answers, not
// about the provider or the store: the next request would not meet it.
// The provider refusing parkgate's key is a refusal, but not the
// request's.
func itsOwn(err error) bool {
	if errors.Is(err, cloud.ErrProviderCredentials) {
		return false
	}
	switch cloud.ErrorCode(err) {
	case cloud.EPaymentProvider, cloud.EInvalid:
		return true
	}
	return false
}

// deferWork holds a reservation back from work's queue for err, which is
// its own (see deferRefused), and logs it; nil unless the store failed.
func (s *Service) deferWork(ctx context.Context, work cloud.ProviderWork, reservationID string, err error) error {
	at, attempts, derr := s.Store.DeferProviderWork(ctx, work, reservationID, err.Error())
	if derr != nil {
		return errors.Join(err, derr)
	}
	providerDeferred.WithLabelValues(string(work)).Inc()
	s.Log.Warn("payment provider work held back", "work", string(work), "reservation", reservationID,
		"attempts", attempts, "retry_at", at, "err", err)
	return nil
}
