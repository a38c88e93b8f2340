package cloud

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Alerts: operators register webhook endpoints; what they subscribed to is
// written, in the transaction of the fact it reports, to an outbox in the
// store (one event, a delivery per endpoint), and a deliverer (cloud/alerts)
// posts each delivery, signed, until the endpoint answers 2xx or three days
// have passed.

// Alert event types, the Events of a webhook endpoint.
const (
	AlertEdgeOffline           = "edge.offline"
	AlertEdgeOnline            = "edge.online"
	AlertGateDeniedRepeatedly  = "gate.denied_repeatedly"
	AlertReservationOverstayed = "reservation.overstayed"
	AlertReservationCancelled  = "reservation.cancelled"
	AlertPaymentRefunded       = "payment.refunded"
)

// AlertTypes are every event type an endpoint may subscribe to.
var AlertTypes = []string{
	AlertEdgeOffline, AlertEdgeOnline, AlertGateDeniedRepeatedly,
	AlertReservationOverstayed, AlertReservationCancelled, AlertPaymentRefunded,
}

// WebhookSecretPrefix starts every endpoint secret, as Stripe's "whsec_",
// so a leaked one is recognisable.
const WebhookSecretPrefix = "whsec_"

// WebhookEndpoint is where an operator wants alerts posted. Secret signs
// each delivery; it is shown once, when the endpoint is made.
type WebhookEndpoint struct {
	ID        string
	URL       string
	Events    []string
	Secret    string
	CreatedAt time.Time
}

// MaxWebhookURL bounds an endpoint's url.
const MaxWebhookURL = 2048

// NewWebhookEndpoint validates what an operator asks for and returns the
// endpoint to store, with a new secret: url absolute, http or https (local
// receivers use http), with a host (else invalid_request on "url"); events a
// non-empty list of AlertTypes, duplicates dropped (else invalid_request on
// "events").
func NewWebhookEndpoint(rawURL string, events []string) (WebhookEndpoint, error) {
	u, err := url.Parse(rawURL)
	switch {
	case len(rawURL) > MaxWebhookURL:
		return WebhookEndpoint{}, FieldError("url", "url must be at most %d characters", MaxWebhookURL)
	case err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "":
		return WebhookEndpoint{}, FieldError("url", "url must be an absolute http or https URL with a host")
	}
	if len(events) == 0 {
		return WebhookEndpoint{}, FieldError("events", "events must name at least one of %s", strings.Join(AlertTypes, ", "))
	}
	var kept []string
	for _, e := range events {
		if !slices.Contains(AlertTypes, e) {
			return WebhookEndpoint{}, FieldError("events", "unknown event %q; events are %s", e, strings.Join(AlertTypes, ", "))
		}
		if !slices.Contains(kept, e) {
			kept = append(kept, e)
		}
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("webhook secret: %w", err)
	}
	return WebhookEndpoint{URL: rawURL, Events: kept, Secret: WebhookSecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])}, nil
}

// WebhookEndpoints are the operators' alert receivers. Endpoints are global:
// they hear of every lot.
type WebhookEndpoints interface {
	// CreateWebhookEndpoint stores e (URL, Events and Secret already
	// validated and made) and returns it with its ID and CreatedAt.
	CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint) (WebhookEndpoint, error)
	// WebhookEndpoints returns every endpoint, oldest first, secrets
	// included (the caller decides what to show).
	WebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error)
	// DeleteWebhookEndpoint removes the endpoint and what it still had to
	// be delivered. An unknown or malformed id is a not_found error.
	DeleteWebhookEndpoint(ctx context.Context, id string) error
}

// AlertDelivery is one event on its way to one endpoint.
type AlertDelivery struct {
	EventID  string
	Type     string
	Created  time.Time
	Data     json.RawMessage
	Endpoint WebhookEndpoint
	Attempts int // attempts made before this one
}

// AlertOutbox is the deliverers' side of the outbox. Any number of
// deliverers (one per replica) share it.
type AlertOutbox interface {
	// ClaimAlertDeliveries takes up to max due deliveries that no one else
	// holds, oldest due first, and holds them for lease: if no outcome is
	// recorded by then, they are due again (a deliverer that died).
	ClaimAlertDeliveries(ctx context.Context, max int, lease time.Duration) ([]AlertDelivery, error)
	// AlertDelivered marks a delivery done and returns how long its event
	// waited, from its creation to now, by the store's clock.
	AlertDelivered(ctx context.Context, eventID, endpointID string) (lag time.Duration, err error)
	// AlertRetry schedules the delivery's next attempt at next, noting why
	// this one failed.
	AlertRetry(ctx context.Context, eventID, endpointID string, next time.Time, reason string) error
	// AlertFailed gives the delivery up for good.
	AlertFailed(ctx context.Context, eventID, endpointID, reason string) error
	// PendingAlerts counts the deliveries not yet delivered or given up.
	PendingAlerts(ctx context.Context) (int64, error)
	// PurgeAlerts deletes deliveries delivered or given up more than
	// olderThan ago, and events none of whose deliveries are left, and
	// returns how many events went.
	PurgeAlerts(ctx context.Context, olderThan time.Duration) (int64, error)
}

// EdgeState is one gate as the cloud last heard of it.
type EdgeState struct {
	GateID     string
	Status     string    // protocol.StateOnline or StateOffline
	LastSeen   time.Time // when the cloud last heard from the gate itself; zero if never
	AppliedSeq int64     // the lot's change the gate had applied, as it last said
}

// LotEdges is what an operator sees of a lot's edges.
type LotEdges struct {
	LotID  string
	LotSeq int64 // the lot's newest change
	Gates  []EdgeState
}

// EdgeStatusReader reads the gates' recorded status.
type EdgeStatusReader interface {
	// LotEdges returns the lot's newest seq and each gate that ever
	// reported its status, by gate id. An unknown lot is a not_found error.
	LotEdges(ctx context.Context, lotID string) (LotEdges, error)
}
