package booking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Stripe event types the service acts on; others are recorded and ignored.
const (
	EventSessionCompleted     = "checkout.session.completed"
	EventAsyncPaymentSucceded = "checkout.session.async_payment_succeeded"
	EventAsyncPaymentFailed   = "checkout.session.async_payment_failed"
	EventSessionExpired       = "checkout.session.expired"
)

var refunds = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "parkgate_refunds_total", Help: "Refunds issued for payments that came too late, by reason."}, []string{"reason"})

// PaymentEvent is the part of a Stripe Checkout Session event the service
// needs.
type PaymentEvent struct {
	ID              string
	Type            string
	SessionID       string
	ReservationID   string
	PaymentStatus   string
	PaymentIntentID string
}

// ParsePaymentEvent reads a (verified) Stripe event.
func ParsePaymentEvent(payload []byte) (PaymentEvent, error) {
	var e struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Object struct {
				ID                string            `json:"id"`
				ClientReferenceID string            `json:"client_reference_id"`
				PaymentStatus     string            `json:"payment_status"`
				PaymentIntent     json.RawMessage   `json:"payment_intent"`
				Metadata          map[string]string `json:"metadata"`
			} `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return PaymentEvent{}, fmt.Errorf("parse payment event: %w", err)
	}
	o := e.Data.Object
	pe := PaymentEvent{ID: e.ID, Type: e.Type, SessionID: o.ID, PaymentStatus: o.PaymentStatus,
		ReservationID: o.ClientReferenceID}
	if pe.ReservationID == "" {
		pe.ReservationID = o.Metadata["reservation_id"]
	}
	// payment_intent is an id, or an object when expanded.
	var pi string
	if json.Unmarshal(o.PaymentIntent, &pi) != nil {
		var obj struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(o.PaymentIntent, &obj)
		pi = obj.ID
	}
	pe.PaymentIntentID = pi
	return pe, nil
}

// HandlePaymentEvent applies one verified Stripe event. It is idempotent:
// every change it makes is conditional on the reservation's status, and every
// refund carries a key derived from the reservation, so the same event
// handled twice, by two workers, or after an older one arrived late, ends in
// the same state with one refund at most. An error means "try again later".
func (s *Service) HandlePaymentEvent(ctx context.Context, payload []byte) error {
	e, err := ParsePaymentEvent(payload)
	if err != nil {
		s.Log.Warn("unreadable payment event dropped", "err", err)
		return nil // retrying cannot make it readable
	}
	switch e.Type {
	case EventSessionCompleted:
		if e.PaymentStatus != "paid" && e.PaymentStatus != "no_payment_required" {
			return nil // an async payment: its outcome comes as its own event
		}
		return s.paid(ctx, e)
	case EventAsyncPaymentSucceded:
		return s.paid(ctx, e)
	case EventSessionExpired, EventAsyncPaymentFailed:
		return s.released(ctx, e)
	}
	return nil
}

func (s *Service) findPaid(ctx context.Context, e PaymentEvent) (cloud.Reservation, error) {
	if e.ReservationID != "" {
		r, err := s.DB.Reservation(ctx, e.ReservationID)
		if cloud.ErrorCode(err) != cloud.ENotFound {
			return r, err
		}
	}
	if e.SessionID != "" {
		return s.DB.ReservationBySession(ctx, e.SessionID)
	}
	return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "event %s names no reservation", e.ID)
}

// paid confirms the reservation if its hold still stands, and otherwise
// gives the money back.
func (s *Service) paid(ctx context.Context, e PaymentEvent) error {
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
		refunds.WithLabelValues("unknown_reservation").Inc()
		return nil
	}
	if err != nil {
		return err
	}
	pay := postgres.PaymentFields{PaymentIntentID: e.PaymentIntentID}
	if r.Status == cloud.StatusPending && r.HoldExpiresAt.After(s.Now()) {
		// Found by its session, or it changed since the first try.
		if confirmed, err := s.confirmInTime(ctx, r.ID, e.PaymentIntentID); confirmed || err != nil {
			return err
		}
		if r, err = s.DB.Reservation(ctx, r.ID); err != nil {
			return err
		}
	}
	switch r.Status {
	case cloud.StatusConfirmed, cloud.StatusCheckedIn, cloud.StatusCompleted, cloud.StatusRefunded:
		return nil // already done: a duplicate or a replay
	case cloud.StatusPending:
		// The hold ran out before the money came: end it first so the
		// refund below is the only way out.
		if _, lotID, err := s.DB.Change(ctx, r.ID, []cloud.Status{cloud.StatusPending}, cloud.StatusExpired, pay); err != nil {
			return err
		} else if lotID != "" {
			transitions.WithLabelValues(string(cloud.StatusExpired)).Inc()
			s.invalidate(ctx, lotID)
		}
	}
	return s.refund(ctx, r.ID, e.PaymentIntentID)
}

// confirmInTime confirms a reservation whose hold still stands, recording
// the payment; false when it was not such a hold.
func (s *Service) confirmInTime(ctx context.Context, id, paymentIntentID string) (bool, error) {
	changed, lotID, err := s.DB.ConfirmHold(ctx, id, paymentIntentID, s.Now())
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
	if err := s.DB.SetPaymentFields(ctx, reservationID, postgres.PaymentFields{PaymentIntentID: paymentIntentID}); err != nil {
		return err
	}
	refundID, err := s.Payments.Refund(ctx, paymentIntentID, "parkgate-refund-"+reservationID)
	if err != nil {
		return fmt.Errorf("refund reservation %s: %w", reservationID, err)
	}
	changed, lotOf, err := s.DB.Change(ctx, reservationID,
		[]cloud.Status{cloud.StatusExpired, cloud.StatusCancelled}, cloud.StatusRefunded,
		postgres.PaymentFields{RefundID: refundID, SessionClosed: true})
	if err != nil {
		return err
	}
	if changed {
		s.invalidate(ctx, lotOf)
		refunds.WithLabelValues("late_payment").Inc()
		transitions.WithLabelValues(string(cloud.StatusRefunded)).Inc()
		s.Log.Info("late payment refunded", "reservation", reservationID, "refund", refundID)
	}
	return nil
}

// released ends a hold whose session expired or whose payment failed.
func (s *Service) released(ctx context.Context, e PaymentEvent) error {
	r, err := s.findPaid(ctx, e)
	if cloud.ErrorCode(err) == cloud.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	to := cloud.StatusExpired
	if e.Type == EventAsyncPaymentFailed {
		to = cloud.StatusCancelled
	}
	changed, lotID, err := s.DB.Change(ctx, r.ID, []cloud.Status{cloud.StatusPending}, to,
		postgres.PaymentFields{SessionClosed: e.Type == EventSessionExpired})
	if err != nil {
		return err
	}
	if changed {
		transitions.WithLabelValues(string(to)).Inc()
		s.invalidate(ctx, lotID)
	} else if e.Type == EventSessionExpired {
		err = s.DB.SetPaymentFields(ctx, r.ID, postgres.PaymentFields{SessionClosed: true})
	}
	return err
}

// invalidate tells the cache and the relay that lots changed.
func (s *Service) invalidate(ctx context.Context, lotIDs ...string) {
	if s.Guard != nil && len(lotIDs) > 0 {
		s.Guard.InvalidateLot(ctx, lotIDs...)
	}
	if s.Changed != nil {
		for _, id := range lotIDs {
			s.Changed(id)
		}
	}
}

// ExpireDueHolds ends PENDING holds whose time is up, at most limit of them,
// and reports how many it ended. Each is its own small transaction that
// re-checks the status under the lot's lock, so replicas running this at
// once, or a payment confirming the same hold, never fight: one wins, the
// others change nothing.
func (s *Service) ExpireDueHolds(ctx context.Context, limit int) (int, error) {
	ids, err := s.DB.DueHolds(ctx, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		changed, lotID, err := s.DB.Change(ctx, id, []cloud.Status{cloud.StatusPending}, cloud.StatusExpired, postgres.PaymentFields{})
		if err != nil {
			return n, err
		}
		if changed {
			n++
			transitions.WithLabelValues(string(cloud.StatusExpired)).Inc()
			s.invalidate(ctx, lotID)
		}
	}
	return n, nil
}

// CloseSessions expires at Stripe the Checkout Sessions of holds that ended,
// so Stripe stops taking money for them. A session found paid is left to
// its completed event, which refunds it.
func (s *Service) CloseSessions(ctx context.Context, limit int) (int, error) {
	if s.Payments == nil {
		return 0, nil
	}
	open, err := s.DB.SessionsToClose(ctx, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range open {
		err := s.Payments.ExpireSession(ctx, o.SessionID, "parkgate-expire-"+o.ReservationID)
		if err != nil && !errors.Is(err, ErrSessionCompleted) {
			return n, fmt.Errorf("expire session %s: %w", o.SessionID, err)
		}
		if err := s.DB.SetPaymentFields(ctx, o.ReservationID, postgres.PaymentFields{SessionClosed: true}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
