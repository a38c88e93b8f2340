package booking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

var errNotCancellable = cloud.Errorf(cloud.ENotCancellable,
	"this reservation can no longer be cancelled: it is checked in, over, or past its lot's free cancellation")

// Cancel cancels a reservation for its driver (or an operator) and returns
// it as it is now. A PENDING hold is cancelled and its Checkout Session
// expired at the provider; a CONFIRMED booking before its starts_at minus
// the lot's free_cancellation is cancelled with a full refund. A second
// cancel answers the same; anything else is not_cancellable.
//
// The decision is the store's, under the lot's lock (parkgate_cancel), so
// of two concurrent cancels one cancels and the other finds it cancelled.
// Both then make sure the refund is asked for, with the one idempotency key
// of the reservation's refunds: the provider refunds once, whatever number
// of cancels, retries and refund workers ask.
func (s *Service) Cancel(ctx context.Context, id string) (cloud.Reservation, error) {
	outcome, lotID, err := s.Store.Cancel(ctx, id, s.Now())
	if err != nil {
		return cloud.Reservation{}, err
	}
	switch outcome {
	case cloud.CancelNotFound:
		return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "reservation %q not found", id)
	case cloud.CancelNotCancellable:
		return cloud.Reservation{}, errNotCancellable
	case cloud.CancelDone:
		transitions.WithLabelValues(string(cloud.StatusCancelled)).Inc()
		s.invalidate(ctx, lotID)
	case cloud.CancelDoneSilent:
		transitions.WithLabelValues(string(cloud.StatusCancelled)).Inc()
		s.invalidateSilent(ctx, lotID) // PENDING → CANCELLED: no edge had it
	}
	r, err := s.Store.Reservation(ctx, id)
	if err != nil {
		return cloud.Reservation{}, err
	}
	if r.Refund != nil && r.Refund.Status == cloud.RefundPending {
		if err := s.refundCancelled(ctx, r); err != nil {
			// The cancellation stands and the refund worker asks again;
			// the driver sees the refund pending, which it is.
			s.Log.Warn("refund of cancelled reservation", "reservation", r.ID, "err", err)
		} else if r, err = s.Store.Reservation(ctx, id); err != nil {
			return cloud.Reservation{}, err
		}
	}
	if r.Payment != nil && (outcome == cloud.CancelDone || outcome == cloud.CancelDoneSilent) && r.Refund == nil {
		s.closeSession(ctx, r)
	}
	return r, nil
}

// refundCancelled asks the provider for a cancellation's refund and
// records that it did. The key is the one every refund of the reservation
// uses (see refund): a late-payment refund and this one can never both
// happen.
//
// The extensions merged into it were paid for on their own, so each is
// refunded under its own row's key, as its late payment would be.
func (s *Service) refundCancelled(ctx context.Context, r cloud.Reservation) error {
	if s.Payments == nil {
		return fmt.Errorf("refund reservation %s: no payment provider", r.ID)
	}
	var refundID string
	if r.Price.Amount > 0 {
		if r.PaymentIntentID == "" {
			return fmt.Errorf("refund reservation %s: %w", r.ID, cloud.Errorf(cloud.EInvalid, "no payment to refund"))
		}
		id, err := s.Payments.Refund(ctx, r.PaymentIntentID, "parkgate-refund-"+r.ID)
		if err != nil {
			return fmt.Errorf("refund reservation %s: %w", r.ID, err)
		}
		refundID = id
	}
	exts, err := s.Store.PaidExtensions(ctx, r.ID)
	if err != nil {
		return err
	}
	for _, x := range exts {
		if x.PaymentIntentID == "" {
			continue
		}
		if _, err := s.Payments.Refund(ctx, x.PaymentIntentID, "parkgate-refund-"+x.ID); err != nil {
			return fmt.Errorf("refund extension %s of %s: %w", x.ID, r.ID, err)
		}
	}
	if err := s.Store.FinishRefund(ctx, r.ID, refundID); err != nil {
		return err
	}
	refunds.WithLabelValues(refundCancelled).Inc()
	return nil
}

// closeSession expires a cancelled hold's Checkout Session now, so the
// driver cannot pay for it; when the provider cannot be reached the
// session worker (CloseSessions) does it later.
func (s *Service) closeSession(ctx context.Context, r cloud.Reservation) {
	if s.Payments == nil {
		return
	}
	err := s.Payments.ExpireSession(ctx, r.Payment.SessionID, "parkgate-expire-"+r.ID)
	if err != nil && !errors.Is(err, cloud.ErrSessionCompleted) {
		s.Log.Warn("expire session of cancelled hold", "reservation", r.ID, "err", err)
		return
	}
	// Paid meanwhile (ErrSessionCompleted): its completed event finds the
	// hold cancelled and refunds it.
	if err := s.Store.SetPaymentFields(ctx, r.ID, cloud.PaymentFields{SessionClosed: true}); err != nil {
		s.Log.Warn("mark session closed", "reservation", r.ID, "err", err)
	}
}

// RetryRefunds asks again for the refunds of cancellations whose own call
// failed (the provider away, a crash), at most limit of them, and reports
// how many went through. One the provider refuses is held back
// (deferRefused) and the rest go on.
func (s *Service) RetryRefunds(ctx context.Context, olderThan time.Duration, limit int) (int, error) {
	ids, err := s.Store.PendingRefunds(ctx, olderThan, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		r, err := s.Store.Reservation(ctx, id)
		if err != nil {
			return n, err
		}
		if err := s.refundCancelled(ctx, r); err != nil {
			if err := s.deferRefused(ctx, cloud.WorkRefund, id, err); err != nil {
				return n, err
			}
			continue
		}
		n++
	}
	return n, nil
}
