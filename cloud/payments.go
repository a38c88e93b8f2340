package cloud

import (
	"context"
	"errors"
	"time"
)

// Checkout asks the payment provider for a hosted payment page for one held
// reservation.
type Checkout struct {
	ReservationID string
	LotID         string
	// Description is the line item's name shown to the driver.
	Description string
	// Amount is in the currency's minor unit (cents).
	Amount   int64
	Currency string
	// ExpiresAt is the end of the hold; zero leaves the provider's default.
	ExpiresAt time.Time
	// IdempotencyKey must be derived from the hold, so that a retry after a
	// crash reuses it and cannot create a second session. Required.
	IdempotencyKey string
}

// Session is a hosted payment page.
type Session struct {
	ID        string
	URL       string
	ExpiresAt time.Time
}

// ErrSessionCompleted is what Payments.ExpireSession returns (wrapped) when
// the session was paid before it could be expired.
var ErrSessionCompleted = errors.New("checkout session already completed")

// ErrProviderCredentials is what a payment-provider call returns (wrapped,
// beside its refusal) when the provider refused parkgate's own key or its
// rights, not the request: every next request meets it too, until an
// operator fixes the key. A client is answered the refusal, as for any
// other (DESIGN: a 4xx is 502 payment_provider_error); a worker ends its
// pass, as for an outage, rather than hold each reservation back as
// refused.
var ErrProviderCredentials = errors.New("the payment provider refused parkgate's credentials")

// ErrInvalidSignature is what a webhook verification returns (wrapped) for
// a payload that is not signed by the provider.
var ErrInvalidSignature = errors.New("invalid webhook signature")

// Payments is the payment provider (Stripe). Every call takes an
// idempotency key so that a retry after a crash never charges or refunds
// twice.
type Payments interface {
	// CreateCheckoutSession returns the session for the key, creating it
	// once.
	CreateCheckoutSession(ctx context.Context, c Checkout) (Session, error)
	// ExpireSession stops the session from taking money; nil when it is
	// expired (now or before), ErrSessionCompleted when it was paid.
	ExpireSession(ctx context.Context, sessionID, idempotencyKey string) error
	// Refund returns a payment in full and the refund's id; nil also when
	// it was refunded before.
	Refund(ctx context.Context, paymentIntentID, idempotencyKey string) (string, error)
	// RefundAmount returns amount (minor units) of a payment and the
	// refund's id, once per key; a payment without that much left
	// unrefunded is refused (a payment_provider_error).
	RefundAmount(ctx context.Context, paymentIntentID string, amount int64, idempotencyKey string) (string, error)
}

// Payment event types the service acts on; others are recorded and ignored.
const (
	EventSessionCompleted      = "checkout.session.completed"
	EventAsyncPaymentSucceeded = "checkout.session.async_payment_succeeded"
	EventAsyncPaymentFailed    = "checkout.session.async_payment_failed"
	EventSessionExpired        = "checkout.session.expired"
)

// PaymentEvent is a verified payment-provider event, decoded once where it
// is verified: what the payment-event bus carries (as JSON) and the service
// acts on. The session fields are empty for events of other types.
type PaymentEvent struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Created time.Time `json:"created"`

	SessionID       string `json:"session_id,omitempty"`
	ReservationID   string `json:"reservation_id,omitempty"` // client_reference_id, else metadata reservation_id
	PaymentStatus   string `json:"payment_status,omitempty"` // paid, unpaid or no_payment_required
	PaymentIntentID string `json:"payment_intent_id,omitempty"`
}

// Key orders one reservation's events: the reservation id, else the
// session id, else the event's own.
func (e PaymentEvent) Key() string {
	switch {
	case e.ReservationID != "":
		return e.ReservationID
	case e.SessionID != "":
		return e.SessionID
	}
	return e.ID
}
