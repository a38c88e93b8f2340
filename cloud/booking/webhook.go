package booking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Webhooks records verified provider events for processing off the request
// path. Verify is the provider's signature check and decode (an error
// wrapping cloud.ErrInvalidSignature for a payload it did not sign); Bus
// records the decoded event.
type Webhooks struct {
	Verify func(payload []byte, signature string) (cloud.PaymentEvent, error)
	Bus    bus.Publisher
}

var webhookEvents = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "parkgate_webhook_events_total", Help: "Webhook calls, by outcome."}, []string{"outcome"})

// The label values of parkgate_webhook_events_total.
const (
	webhookInvalidSignature = "invalid_signature"
	webhookUnreadable       = "unreadable"
	webhookError            = "error"
	webhookDuplicate        = "duplicate"
	webhookRecorded         = "recorded"
)

// Receive verifies and records one webhook call. Nothing is recorded for a
// bad signature; a recorded event is processed later by HandleMessage.
func (w *Webhooks) Receive(ctx context.Context, payload []byte, signature string) (bool, error) {
	e, err := w.Verify(payload, signature)
	if err != nil {
		if errors.Is(err, cloud.ErrInvalidSignature) {
			webhookEvents.WithLabelValues(webhookInvalidSignature).Inc()
			return false, cloud.Errorf(cloud.EInvalidSignature, "the webhook signature does not verify")
		}
		webhookEvents.WithLabelValues(webhookUnreadable).Inc()
		return false, &cloud.Error{Code: cloud.EInvalid, Message: "unreadable event: " + err.Error()}
	}
	dup, err := w.Bus.Publish(ctx, EventMessage(e))
	if err != nil {
		webhookEvents.WithLabelValues(webhookError).Inc()
		// Stripe retries on a non-2xx: better late than lost.
		return false, &cloud.Error{Code: cloud.EUnavailable, Message: "the event could not be recorded; retry"}
	}
	if dup {
		webhookEvents.WithLabelValues(webhookDuplicate).Inc()
	} else {
		webhookEvents.WithLabelValues(webhookRecorded).Inc()
	}
	return dup, nil
}

// EventMessage is the bus message of a verified event: the event as JSON,
// keyed so that one reservation's events are handled in order.
func EventMessage(e cloud.PaymentEvent) bus.Message {
	payload, _ := json.Marshal(e) // strings and a time: cannot fail
	return bus.Message{ID: e.ID, Key: e.Key(), Type: e.Type, Payload: payload, CreatedAt: e.Created}
}

// HandleMessage is the payment-event bus's handler: it decodes the event
// and applies it (HandlePaymentEvent).
func (s *Service) HandleMessage(ctx context.Context, m bus.Message) error {
	e, err := s.decodeEvent(m.Payload)
	if err != nil {
		s.Log.Warn("unreadable payment event dropped", "id", m.ID, "err", err)
		return nil // retrying cannot make it readable
	}
	return s.HandlePaymentEvent(ctx, e)
}

// decodeEvent reads a bus payload: a cloud.PaymentEvent as JSON.
//
// Until the release after this one, it also reads the previous format, the
// provider's raw event as the webhook received it, with DecodeLegacy: an
// existing database may hold such events not yet handled when the new
// release starts. The provider's event is the one with a "data" object;
// the new format is tried first and costs one decode. Remove the fallback, and DecodeLegacy, once every replica runs a
// release that writes the new format and the old events are handled.
func (s *Service) decodeEvent(payload []byte) (cloud.PaymentEvent, error) {
	var e struct {
		cloud.PaymentEvent
		Data json.RawMessage `json:"data"` // only in the provider's raw event
	}
	err := json.Unmarshal(payload, &e)
	if err == nil && e.Data == nil && e.ID != "" {
		return e.PaymentEvent, nil
	}
	if s.DecodeLegacy != nil {
		if le, lerr := s.DecodeLegacy(payload); lerr == nil {
			return le, nil
		}
	}
	if err == nil {
		err = errors.New("neither a payment event nor a provider event")
	}
	return cloud.PaymentEvent{}, fmt.Errorf("decode payment event: %w", err)
}
