package adapt

import (
	"context"
	"errors"
	"time"

	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/stripepay"
)

// Stripe fits stripepay to the booking service's Payments port.
type Stripe struct{ C *stripepay.Client }

func (a Stripe) CreateCheckoutSession(ctx context.Context, c booking.Checkout) (booking.Session, error) {
	s, err := a.C.CreateCheckoutSession(ctx, stripepay.CheckoutRequest{
		ReservationID: c.ReservationID, LotID: c.LotID, Description: c.Description,
		Amount: c.Amount, Currency: c.Currency, ExpiresAt: c.ExpiresAt, IdempotencyKey: c.IdempotencyKey,
	})
	return booking.Session{ID: s.ID, URL: s.URL}, err
}

func (a Stripe) ExpireSession(ctx context.Context, id, key string) error {
	err := a.C.ExpireSession(ctx, id, key)
	if errors.Is(err, stripepay.ErrSessionCompleted) {
		return booking.ErrSessionCompleted
	}
	return err
}

func (a Stripe) Refund(ctx context.Context, pi, key string) (string, error) {
	return a.C.Refund(ctx, pi, key)
}

// VerifyStripe checks a Stripe webhook with stripepay and keys the event
// by reservation (else session) so one reservation's events stay in order.
func VerifyStripe(payload []byte, sig string, secrets []string) (booking.VerifiedEvent, error) {
	e, err := stripepay.VerifyWebhook(payload, sig, secrets, stripepay.DefaultTolerance, time.Now())
	if err != nil {
		if errors.Is(err, stripepay.ErrInvalidSignature) {
			return booking.VerifiedEvent{}, errors.Join(booking.ErrBadSignature, err)
		}
		return booking.VerifiedEvent{}, err
	}
	key := e.ReservationID
	if key == "" {
		key = e.SessionID
	}
	if key == "" {
		key = e.ID
	}
	return booking.VerifiedEvent{ID: e.ID, Type: e.Type, Key: key, CreatedAt: e.Created}, nil
}

// Guard fits the Redis guard to the booking service's Guard port.
type Guard struct{ G *guard.Guard }

func (a Guard) Lock(ctx context.Context, lotID string, start, end time.Time) (func(), error) {
	return a.G.Lock(ctx, lotID, start, end)
}

func (a Guard) SaveResponse(ctx context.Context, key string, r booking.StoredResponse) {
	a.G.SaveResponse(ctx, key, guard.StoredResponse{RequestHash: r.RequestHash, Status: r.Status, Body: r.Body})
}

func (a Guard) InvalidateLot(ctx context.Context, lotIDs ...string) {
	a.G.InvalidateLot(ctx, lotIDs...)
}

// Cache fits the guard's availability cache to the HTTP API's port.
type Cache struct{ G *guard.Guard }

func (a Cache) Availability(ctx context.Context, lotID string, start, end time.Time) (int, int, bool, func(int, int)) {
	avail, total, ver, ok := a.G.Availability(ctx, lotID, start, end)
	return avail, total, ok, func(avail, total int) {
		a.G.StoreAvailability(ctx, lotID, start, end, ver, avail, total)
	}
}

func (a Guard) Peek(ctx context.Context, key, lotID string, start, end time.Time, availability bool) (booking.StoredResponse, bool, bool, func(int)) {
	p := a.G.Peek(ctx, key, lotID, start, end, availability)
	r := booking.StoredResponse{RequestHash: p.Response.RequestHash, Status: p.Response.Status, Body: p.Response.Body}
	if !availability {
		return r, p.Stored, false, nil
	}
	return r, p.Stored, p.Cached && p.Available <= 0, func(total int) {
		a.G.StoreAvailability(ctx, lotID, start, end, p.Version, 0, total)
	}
}
