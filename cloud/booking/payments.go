package booking

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	refunds = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_refunds_total", Help: "Refunds that went through, by reason: late_payment, unknown_reservation, cancelled, operator."}, []string{"reason"})
	operatorRefunds = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_operator_refunds_total",
		Help: "Attempts to take an operator's refund from the payment provider, by outcome: succeeded, refused (by the provider, the refund failed), deferred (provider away or a part refused; left pending for the worker).",
	}, []string{"outcome"})
)

// The label values of parkgate_refunds_total and
// parkgate_operator_refunds_total.
const (
	refundLate      = "late_payment"
	refundUnknown   = "unknown_reservation"
	refundCancelled = "cancelled"
	refundOperator  = "operator"

	operatorSucceeded = "succeeded"
	operatorRefused   = "refused"
	operatorDeferred  = "deferred"
)

// HandlePaymentEvent applies one verified payment event. It is idempotent:
// every change it makes is conditional on the reservation's status, and every
// refund carries a key derived from the reservation, so the same event
// handled twice, by two workers, or after an older one arrived late, ends in
// the same state with one refund at most. An error means "try again later".
func (s *Service) HandlePaymentEvent(ctx context.Context, e cloud.PaymentEvent) error {
	switch e.Type {
	case cloud.EventSessionCompleted:
		if e.PaymentStatus != "paid" && e.PaymentStatus != "no_payment_required" {
			return nil // an async payment: its outcome comes as its own event
		}
		return s.paid(ctx, e)
	case cloud.EventAsyncPaymentSucceeded:
		return s.paid(ctx, e)
	case cloud.EventSessionExpired, cloud.EventAsyncPaymentFailed:
		return s.released(ctx, e)
	}
	return nil
}

func (s *Service) findPaid(ctx context.Context, e cloud.PaymentEvent) (cloud.Reservation, error) {
	if e.ReservationID != "" {
		r, err := s.Store.Reservation(ctx, e.ReservationID)
		if cloud.ErrorCode(err) != cloud.ENotFound {
			return r, err
		}
	}
	if e.SessionID != "" {
		return s.Store.ReservationBySession(ctx, e.SessionID)
	}
	return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "event %s names no reservation", e.ID)
}

// paid confirms the reservation if its hold still stands, and otherwise
// gives the money back.
func (s *Service) paid(ctx context.Context, e cloud.PaymentEvent) error {
	// The common case, a payment in time, is one statement; anything else
	// reads the reservation to see what it is.
	if _, err := uuid.Parse(e.ReservationID); err == nil {
		if confirmed, err := s.confirmInTime(ctx, e.ReservationID, e.PaymentIntentID); confirmed || err != nil {
			return err
		}
	}
	r, err := s.findPaid(ctx, e)
	if cloud.ErrorCode(err) == cloud.ENotFound {
		if e.ReservationID == "" || e.PaymentIntentID == "" {
			s.Log.Warn("payment for no parkgate reservation ignored", "event", e.ID, "session", e.SessionID)
			return nil
		}
		// Ours by its metadata, but the reservation is gone: money for
		// nothing, so it goes back.
		_, err := s.Payments.Refund(ctx, e.PaymentIntentID, "parkgate-refund-"+e.ReservationID)
		if err != nil {
			return fmt.Errorf("refund payment of unknown reservation: %w", err)
		}
		refunds.WithLabelValues(refundUnknown).Inc()
		return nil
	}
	if err != nil {
		return err
	}
	if r.ExtendsID != "" {
		return s.extensionPaid(ctx, r, e)
	}
	if ok, err := s.overstayPaid(ctx, r, e); ok || err != nil {
		return err
	}
	pay := cloud.PaymentFields{PaymentIntentID: e.PaymentIntentID}
	if r.Status == cloud.StatusPending && r.HoldExpiresAt.After(s.Now()) {
		// Found by its session, or it changed since the first try.
		if confirmed, err := s.confirmInTime(ctx, r.ID, e.PaymentIntentID); confirmed || err != nil {
			return err
		}
		if r, err = s.Store.Reservation(ctx, r.ID); err != nil {
			return err
		}
	}
	if r.Status == cloud.StatusCancelled && r.Refund != nil {
		return nil // confirmed, then cancelled in policy: its refund is the cancellation's (Cancel)
	}
	switch r.Status {
	case cloud.StatusConfirmed, cloud.StatusCheckedIn, cloud.StatusCompleted, cloud.StatusRefunded:
		return nil // already done: a duplicate or a replay
	case cloud.StatusPending:
		// The hold ran out before the money came: end it first so the
		// refund below is the only way out.
		if _, lotID, err := s.Store.Change(ctx, r.ID, []cloud.Status{cloud.StatusPending}, cloud.StatusExpired, pay); err != nil {
			return err
		} else if lotID != "" {
			transitions.WithLabelValues(string(cloud.StatusExpired)).Inc()
			s.invalidateSilent(ctx, lotID) // PENDING → EXPIRED: no edge had it
		}
	}
	return s.refund(ctx, r.ID, e.PaymentIntentID)
}

// confirmInTime confirms a reservation whose hold still stands, recording
// the payment; false when it was not such a hold.
func (s *Service) confirmInTime(ctx context.Context, id, paymentIntentID string) (bool, error) {
	changed, lotID, err := s.Store.ConfirmHold(ctx, id, paymentIntentID, s.Now())
	if err != nil || !changed {
		return false, err
	}
	transitions.WithLabelValues(string(cloud.StatusConfirmed)).Inc()
	s.invalidate(ctx, lotID)
	return true, nil
}

// refund returns the payment of a reservation whose hold ended before it
// was paid, and marks it REFUNDED. The idempotency key is the reservation's:
// whatever number of events and workers get here, Stripe refunds once.
func (s *Service) refund(ctx context.Context, reservationID, paymentIntentID string) error {
	if s.Payments == nil || paymentIntentID == "" {
		return fmt.Errorf("refund reservation %s: no payment to refund", reservationID)
	}
	if err := s.Store.SetPaymentFields(ctx, reservationID, cloud.PaymentFields{PaymentIntentID: paymentIntentID}); err != nil {
		return err
	}
	refundID, err := s.Payments.Refund(ctx, paymentIntentID, "parkgate-refund-"+reservationID)
	if err != nil {
		return fmt.Errorf("refund reservation %s: %w", reservationID, err)
	}
	changed, lotOf, err := s.Store.Change(ctx, reservationID,
		[]cloud.Status{cloud.StatusExpired, cloud.StatusCancelled}, cloud.StatusRefunded,
		cloud.PaymentFields{RefundID: refundID, SessionClosed: true})
	if err != nil {
		return err
	}
	if changed {
		s.invalidateSilent(ctx, lotOf) // EXPIRED or CANCELLED → REFUNDED: no edge has it
		refunds.WithLabelValues(refundLate).Inc()
		transitions.WithLabelValues(string(cloud.StatusRefunded)).Inc()
		s.Log.Info("late payment refunded", "reservation", reservationID, "refund", refundID)
	}
	return nil
}

// released ends a hold whose session expired or whose payment failed.
func (s *Service) released(ctx context.Context, e cloud.PaymentEvent) error {
	r, err := s.findPaid(ctx, e)
	if cloud.ErrorCode(err) == cloud.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if e.Type == cloud.EventSessionExpired {
		if ok, err := s.overstaySessionExpired(ctx, r, e); ok || err != nil {
			return err
		}
	}
	to := cloud.StatusExpired
	if e.Type == cloud.EventAsyncPaymentFailed {
		to = cloud.StatusCancelled
	}
	changed, lotID, err := s.Store.Change(ctx, r.ID, []cloud.Status{cloud.StatusPending}, to,
		cloud.PaymentFields{SessionClosed: e.Type == cloud.EventSessionExpired})
	if err != nil {
		return err
	}
	if changed {
		transitions.WithLabelValues(string(to)).Inc()
		s.invalidateSilent(ctx, lotID) // a PENDING hold ended: no edge had it
	} else if e.Type == cloud.EventSessionExpired {
		err = s.Store.SetPaymentFields(ctx, r.ID, cloud.PaymentFields{SessionClosed: true})
	}
	return err
}
