package booking

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// A hold's Checkout Session: made before the write on a calm lot (hold),
// after it on a lot in a rush or when a crashed request resumes (handOff),
// and expired unused when the hold it was made for was not made.

// handOff creates the Checkout Session of a hold made first (on a lot in a
// rush), or finds it again, through the provider's idempotency, when
// resuming a crashed request; then it stores the session on the
// reservation and the final response under the key.
func (s *Service) handOff(ctx context.Context, key string, hash []byte, lot cloud.Lot, r cloud.Reservation) (Response, error) {
	if s.Payments != nil {
		sess, err := s.Payments.CreateCheckoutSession(ctx, checkout(lot, r.ID, r.StartsAt, r.EndsAt, r.Price, r.HoldExpiresAt))
		if err != nil {
			s.Log.Warn("checkout session failed; releasing hold", "reservation", r.ID, "err", err)
			if aerr := s.Store.AbandonHold(context.WithoutCancel(ctx), r.ID, key); aerr != nil {
				// The lease on the key runs out and the hold expires: the
				// spot comes back either way, only later.
				s.Log.Error("release hold", "reservation", r.ID, "err", aerr)
			} else {
				s.invalidateSilent(ctx, lot.ID) // PENDING → CANCELLED: no edge had it
			}
			return Response{}, checkoutError(err)
		}
		r.Payment = payment(sess)
	}
	body, err := holdBody(r)
	if err != nil {
		return Response{}, err
	}
	var sid, surl string
	if r.Payment != nil {
		sid, surl = r.Payment.SessionID, r.Payment.URL
	}
	if err := s.Store.FinishHold(ctx, r.ID, sid, surl, key, http.StatusCreated, body); err != nil {
		return Response{}, err
	}
	resp := Response{Status: http.StatusCreated, Body: body, ID: r.ID}
	// Not waited for: Postgres has the answer now, and a retry that comes
	// before Redis does replays it from there, the same bytes
	// (TestRetryMissingRedis). The driver is not kept a round trip longer
	// for a copy.
	go s.saveResponse(context.WithoutCancel(ctx), key, hash, resp)
	return resp, nil
}

// checkout is what the provider is asked for a hold's payment page. Its
// idempotency key is the reservation's: a retry after a crash finds the
// same session.
func checkout(lot cloud.Lot, id string, startsAt, endsAt time.Time, price cloud.Money, expiresAt time.Time) cloud.Checkout {
	return cloud.Checkout{
		ReservationID: id, LotID: lot.ID,
		Description: fmt.Sprintf("Parking at %s, %s to %s", lot.Name,
			startsAt.Format(time.RFC3339), endsAt.Format(time.RFC3339)),
		Amount: price.Amount, Currency: price.Currency, ExpiresAt: expiresAt,
		IdempotencyKey: "parkgate-checkout-" + id,
	}
}

// checkoutError is the answer to a hold whose session could not be made.
func checkoutError(err error) error {
	if cloud.ErrorCode(err) == cloud.EPaymentProvider {
		// The provider refused the request: a retry would be refused
		// too. Its message says why.
		holdConflicts.WithLabelValues(cloud.EPaymentProvider).Inc()
		return err
	}
	holdConflicts.WithLabelValues(cloud.EUnavailable).Inc()
	return &cloud.Error{Code: cloud.EUnavailable, Message: "the payment provider cannot be reached; retry with the same Idempotency-Key"}
}

// discardSession expires, in the background, a session made for a hold
// that was not made (no spot, the key taken, the lot closed): nobody was
// given its address, so this only tidies the provider's side; if it
// fails, the session expires on its own.
func (s *Service) discardSession(ctx context.Context, id string, sess cloud.Session) {
	sessionsDiscarded.Inc()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := s.Payments.ExpireSession(ctx, sess.ID, "parkgate-expire-"+id); err != nil {
			s.Log.Warn("expire unused checkout session", "session", sess.ID, "err", err)
		}
	}()
}

func payment(sess cloud.Session) *cloud.Payment {
	return &cloud.Payment{Provider: "stripe", SessionID: sess.ID, URL: sess.URL}
}
