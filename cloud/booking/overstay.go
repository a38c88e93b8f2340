package booking

import (
	"context"
	"fmt"

	"github.com/parkgate/parkgate/cloud"
)

// ChargeOverstays opens the Checkout Sessions of the overstays the
// gate-event ingest marked due and priced, at most limit of them, off the
// ingest's transaction (a gate event never waits for Stripe); it reports
// how many it handed on. One the ingest left unpriced (marked by an older
// release, or too large to price) is priced here, once: the store keeps
// the first amount. Each session is made under a key derived from the
// reservation, so replicas running this at once make one session (a new
// key for each session after one expired unpaid). One the provider
// refuses, or too large to price, is held back (deferRefused) and the rest
// go on.
func (s *Service) ChargeOverstays(ctx context.Context, limit int) (int, error) {
	due, err := s.Store.DueOverstays(ctx, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		lot, err := s.Lot(ctx, d.LotID)
		if err != nil {
			return n, err
		}
		var amount int64
		if d.Amount != nil {
			amount = *d.Amount
		} else {
			price, err := cloud.OverstayPrice(lot.HourlyRate, d.Minutes)
			if err != nil {
				// This overstay's own fault, as a refusal is: the others go on.
				if err := s.deferWork(ctx, cloud.WorkOverstaySession, d.ReservationID,
					fmt.Errorf("overstay of %s: %w", d.ReservationID, err)); err != nil {
					return n, err
				}
				continue
			}
			if amount, err = s.Store.PriceOverstay(ctx, d.ReservationID, price.Amount); err != nil {
				return n, err
			}
		}
		if amount == 0 || s.Payments == nil {
			// Nothing to pay (a free lot): settled as it is priced.
			if err := s.Store.SetOverstaySession(ctx, d.ReservationID, "", ""); err != nil {
				return n, err
			}
			n++
			continue
		}
		if d.SessionID == "" {
			sess, err := s.Payments.CreateCheckoutSession(ctx, cloud.Checkout{
				ReservationID: d.ReservationID, LotID: lot.ID,
				Description: fmt.Sprintf("Overstay at %s, %d minutes", lot.Name, d.Minutes),
				Amount:      amount, Currency: lot.HourlyRate.Currency,
				IdempotencyKey: fmt.Sprintf("parkgate-overstay-%s-%d", d.ReservationID, d.Sessions),
			})
			if err != nil {
				if err := s.deferRefused(ctx, cloud.WorkOverstaySession, d.ReservationID,
					fmt.Errorf("overstay session of %s: %w", d.ReservationID, err)); err != nil {
					return n, err
				}
				continue
			}
			if err := s.Store.SetOverstaySession(ctx, d.ReservationID, sess.ID, sess.URL); err != nil {
				return n, err
			}
		}
		n++
	}
	return n, nil
}

// overstayPaid marks paid the overstay of r when the event is its
// session's payment; false when it is not.
func (s *Service) overstayPaid(ctx context.Context, r cloud.Reservation, e cloud.PaymentEvent) (bool, error) {
	if r.Overstay == nil || r.Overstay.Payment == nil || e.SessionID == "" || r.Overstay.Payment.SessionID != e.SessionID {
		return false, nil
	}
	if _, err := s.Store.OverstayPaid(ctx, r.ID, e.SessionID, e.PaymentIntentID); err != nil {
		return true, err
	}
	return true, nil
}

// overstaySessionExpired forgets the expired session of a due overstay, so
// ChargeOverstays opens another; false when the event is not about it.
func (s *Service) overstaySessionExpired(ctx context.Context, r cloud.Reservation, e cloud.PaymentEvent) (bool, error) {
	if r.Overstay == nil || r.Overstay.Payment == nil || e.SessionID == "" || r.Overstay.Payment.SessionID != e.SessionID {
		return false, nil
	}
	_, err := s.Store.OverstaySessionExpired(ctx, r.ID, e.SessionID)
	return true, err
}
