package booking

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
)

// RefundRequest is an operator's refund: Amount nil gives back all that is
// left of what was paid.
type RefundRequest struct {
	Amount *int64
}

// Validate checks the amount: a positive integer of minor units.
func (r RefundRequest) Validate() error {
	if r.Amount != nil && *r.Amount < 1 {
		return cloud.FieldError("amount", "amount must be a positive integer in minor units, or absent for all that is left")
	}
	return nil
}

func (r RefundRequest) hash() []byte {
	h := sha256.New()
	if r.Amount == nil {
		h.Write([]byte("rest"))
	} else {
		h.Write([]byte(strconv.FormatInt(*r.Amount, 10)))
	}
	return h.Sum(nil)
}

// Refund gives back money of a reservation for its operator and answers
// the reservation with refund{amount,currency,status}: all given back so
// far. What was paid is the booking's payment, its paid extensions' and its
// paid overstay's; what all refunds give back (a cancellation's included)
// never passes it: refund_exceeds_payment, also for a reservation nothing
// was paid for. The reservation's status is left as it is: a refund is
// money, not the booking's life (a checked-in car stays checked in).
//
// The store decides and records the refund first, split over the payments
// it comes from (parkgate_refund, under the reservation's lock), then each
// part is asked of the provider under a key derived from the part: a retry,
// a concurrent request with the same Idempotency-Key, or the refund worker
// asks again under the same keys, and the provider refunds each part once.
//
// key is optional: without one each call is a new refund. With one, the
// same key and amount answer the first call's response (Replayed); another
// amount is idempotency_key_reused.
func (s *Service) Refund(ctx context.Context, reservationID, key string, req RefundRequest) (Response, error) {
	if key != "" {
		if err := CheckKey(key); err != nil {
			return Response{}, err
		}
	}
	if err := req.Validate(); err != nil {
		return Response{}, err
	}
	res, err := s.Store.CreateRefund(ctx, cloud.RefundParams{
		ID: uuid.NewString(), ReservationID: reservationID, Amount: req.Amount, Key: key, RequestHash: req.hash(),
	})
	if err != nil {
		return Response{}, err
	}
	switch res.Outcome {
	case cloud.RefundNotFound:
		return Response{}, cloud.Errorf(cloud.ENotFound, "reservation %q not found", reservationID)
	case cloud.RefundKeyReused:
		return Response{}, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another refund")
	case cloud.RefundExceeds:
		if res.Left <= 0 {
			return Response{}, cloud.Errorf(cloud.ERefundExceeds, "nothing paid for this reservation is left to refund")
		}
		return Response{}, cloud.Errorf(cloud.ERefundExceeds, "at most %d is left to refund", res.Left)
	case cloud.RefundInFlight:
		return Response{}, cloud.Errorf(cloud.EIdempotencyInUse, "a refund with this Idempotency-Key is in progress")
	case cloud.RefundExists:
		if res.ResponseBody != nil {
			return Response{Status: http.StatusOK, Body: res.ResponseBody, Replayed: true}, nil
		}
	case cloud.RefundCreated:
	default:
		return Response{}, fmt.Errorf("refund: unexpected outcome %q", res.Outcome)
	}
	if err := s.takeRefund(ctx, res.RefundID); err != nil {
		return Response{}, err
	}
	r, err := s.Reservation(ctx, reservationID)
	if err != nil {
		return Response{}, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return Response{}, fmt.Errorf("encode reservation: %w", err)
	}
	if key != "" {
		// Two requests with the key that both got here answer the same
		// bytes: the first body kept.
		if body, err = s.Store.StoreRefundResponse(ctx, res.RefundID, body); err != nil {
			return Response{}, err
		}
	}
	return Response{Status: http.StatusOK, Body: body, Replayed: res.Outcome == cloud.RefundExists}, nil
}

// takeRefund asks the provider for each part of a refund not yet taken and
// settles the refund: succeeded once every part is taken; failed when the
// provider refused it before any part was (it then no longer counts
// against what was paid). A refusal after a part went through, the
// provider away, or refusing parkgate's key, leaves it pending for a
// retry or the worker.
func (s *Service) takeRefund(ctx context.Context, refundID string) error {
	parts, status, err := s.Store.RefundParts(ctx, refundID)
	if err != nil {
		return err
	}
	switch status {
	case cloud.RefundSucceeded:
		return nil
	case cloud.RefundFailed:
		return cloud.Errorf(cloud.EPaymentProvider, "the payment provider refused this refund")
	}
	if s.Payments == nil {
		return cloud.Errorf(cloud.EUnavailable, "no payment provider is configured to refund through")
	}
	taken := 0
	for _, p := range parts {
		if p.ProviderRefundID != "" {
			taken++
			continue
		}
		id, err := s.Payments.RefundAmount(ctx, p.PaymentIntentID, p.Amount,
			"parkgate-oprefund-"+refundID+"-"+strconv.Itoa(p.Part))
		if err != nil {
			if itsOwn(err) && taken == 0 {
				if serr := s.Store.SettleRefund(ctx, refundID, cloud.RefundFailed); serr != nil {
					s.Log.Warn("settle refused refund", "refund", refundID, "err", serr)
				}
				operatorRefunds.WithLabelValues(operatorRefused).Inc()
				return err
			}
			operatorRefunds.WithLabelValues(operatorDeferred).Inc()
			// Refused after a part went through, a request this one
			// would not send, or parkgate's key refused (left pending
			// for the worker): the refusal is the answer.
			if itsOwn(err) || cloud.ErrorCode(err) == cloud.EPaymentProvider {
				return err
			}
			return fmt.Errorf("%w: %w", &cloud.Error{Code: cloud.EUnavailable,
				Message: "the payment provider cannot be reached; the refund is recorded and will be asked again"}, err)
		}
		if err := s.Store.FinishRefundPart(ctx, refundID, p.Part, id); err != nil {
			return err
		}
		taken++
	}
	if err := s.Store.SettleRefund(ctx, refundID, cloud.RefundSucceeded); err != nil {
		return err
	}
	refunds.WithLabelValues(refundOperator).Inc()
	operatorRefunds.WithLabelValues(operatorSucceeded).Inc()
	return nil
}

// RetryOperatorRefunds asks again for operators' refunds left pending (the
// provider away, a crash), at most limit, and reports how many settled.
// One the provider refuses does not hold up the others: the read claimed
// it for olderThan. The provider or the store away ends the pass: each
// next refund would wait out the same timeout.
func (s *Service) RetryOperatorRefunds(ctx context.Context, olderThan time.Duration, limit int) (int, error) {
	if s.Payments == nil {
		return 0, nil
	}
	ids, _, err := s.Store.PendingOperatorRefunds(ctx, olderThan, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := s.takeRefund(ctx, id); err != nil {
			if !itsOwn(err) {
				return n, fmt.Errorf("operator refund %s: %w", id, err)
			}
			s.Log.Warn("operator refund", "refund", id, "err", err)
			continue
		}
		n++
	}
	return n, nil
}
