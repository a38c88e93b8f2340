package booking

import (
	"context"
	"errors"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// ErrBadSignature is what a Verify function returns (wrapped or not) for a
// payload that is not signed by the provider.
var ErrBadSignature = errors.New("booking: bad webhook signature")

// VerifiedEvent is a provider event whose signature checked out.
type VerifiedEvent struct {
	ID        string
	Type      string
	Key       string // ordering key: the reservation id, else the session id
	CreatedAt time.Time
}

// Webhooks records verified provider events for processing off the request
// path. Verify and Publish are the provider's signature check and the
// payment-event bus.
type Webhooks struct {
	Verify  func(payload []byte, signature string) (VerifiedEvent, error)
	Publish func(ctx context.Context, e VerifiedEvent, payload []byte) (duplicate bool, err error)
}

var webhookEvents = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "parkgate_webhook_events_total", Help: "Webhook calls, by outcome."}, []string{"outcome"})

// Receive verifies and records one webhook call. Nothing is recorded for a
// bad signature; a recorded event is processed later by HandlePaymentEvent.
func (w *Webhooks) Receive(ctx context.Context, payload []byte, signature string) (bool, error) {
	e, err := w.Verify(payload, signature)
	if err != nil {
		if errors.Is(err, ErrBadSignature) {
			webhookEvents.WithLabelValues("invalid_signature").Inc()
			return false, cloud.Errorf(cloud.EInvalidSignature, "the webhook signature does not verify")
		}
		webhookEvents.WithLabelValues("unreadable").Inc()
		return false, &cloud.Error{Code: cloud.EInvalid, Message: "unreadable event: " + err.Error()}
	}
	dup, err := w.Publish(ctx, e, payload)
	if err != nil {
		webhookEvents.WithLabelValues("error").Inc()
		// Stripe retries on a non-2xx: better late than lost.
		return false, &cloud.Error{Code: cloud.EUnavailable, Message: "the event could not be recorded; retry"}
	}
	if dup {
		webhookEvents.WithLabelValues("duplicate").Inc()
	} else {
		webhookEvents.WithLabelValues("recorded").Inc()
	}
	return dup, nil
}
