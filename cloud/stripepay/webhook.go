package stripepay

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// DefaultTolerance is how far a signature's timestamp may be from now, either
// way, before the event is refused as a possible replay.
const DefaultTolerance = 5 * time.Minute

// Verifier checks Stripe webhook calls against the endpoint's secrets; its
// Verify is what booking.Webhooks calls.
type Verifier struct {
	Secrets   []string
	Tolerance time.Duration    // 0: DefaultTolerance
	Now       func() time.Time // nil: time.Now
}

// Verify is VerifyWebhook with the verifier's secrets, tolerance and clock.
func (v Verifier) Verify(payload []byte, sigHeader string) (cloud.PaymentEvent, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	return VerifyWebhook(payload, sigHeader, v.Secrets, v.Tolerance, now())
}

// VerifyWebhook checks payload against sigHeader (t=<unix>,v1=<hex>,...) and
// decodes it, the one decode of a Stripe event: a signature that does not
// verify is an error wrapping cloud.ErrInvalidSignature. Any v1 signature made with any of secrets is accepted, so an
// endpoint's secret can be rolled: Stripe signs with old and new while both
// are live. The event's api_version is not checked: parsing is limited to
// fields stable across versions. tolerance <= 0 means DefaultTolerance.
//
// It does not use stripe-go's webhook.ConstructEvent: that reads the wall
// clock (no injected now), accepts timestamps from the future, and would
// parse the header and the body once per secret.
func VerifyWebhook(payload []byte, sigHeader string, secrets []string, tolerance time.Duration, now time.Time) (cloud.PaymentEvent, error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if len(secrets) == 0 {
		return cloud.PaymentEvent{}, errors.New("stripepay: no webhook secrets configured")
	}
	if sigHeader == "" {
		return cloud.PaymentEvent{}, fmt.Errorf("stripepay: %w: no signature header", cloud.ErrInvalidSignature)
	}
	ts, sigs, err := parseSignatureHeader(sigHeader)
	if err != nil {
		return cloud.PaymentEvent{}, err
	}
	if !signedByAny(payload, ts, sigs, secrets) {
		return cloud.PaymentEvent{}, fmt.Errorf("stripepay: %w: no signature matches", cloud.ErrInvalidSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return cloud.PaymentEvent{}, fmt.Errorf("stripepay: %w: timestamp %d is %v from now", cloud.ErrInvalidSignature, ts, d.Round(time.Second))
	}
	return DecodeEvent(payload)
}

// parseSignatureHeader reads the timestamp and the v1 signatures, ignoring
// other schemes (Stripe also sends v0 in test mode) and v1 values that are
// not hex, as Stripe's libraries do.
func parseSignatureHeader(h string) (int64, [][]byte, error) {
	var ts int64
	haveTS := false
	var sigs [][]byte
	for _, pair := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return 0, nil, fmt.Errorf("stripepay: %w: malformed header", cloud.ErrInvalidSignature)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || haveTS {
				return 0, nil, fmt.Errorf("stripepay: %w: malformed timestamp", cloud.ErrInvalidSignature)
			}
			ts, haveTS = n, true
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	if !haveTS {
		return 0, nil, fmt.Errorf("stripepay: %w: no timestamp", cloud.ErrInvalidSignature)
	}
	if len(sigs) == 0 {
		return 0, nil, fmt.Errorf("stripepay: %w: no v1 signature", cloud.ErrInvalidSignature)
	}
	return ts, sigs, nil
}

func signedByAny(payload []byte, ts int64, sigs [][]byte, secrets []string) bool {
	prefix := strconv.FormatInt(ts, 10) + "."
	for _, s := range secrets {
		if s == "" {
			continue
		}
		mac := hmac.New(sha256.New, []byte(s))
		mac.Write([]byte(prefix))
		mac.Write(payload)
		want := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return true
			}
		}
	}
	return false
}

type wireEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type wireSession struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`
	PaymentStatus     string            `json:"payment_status"`
	PaymentIntent     json.RawMessage   `json:"payment_intent"`
}

// DecodeEvent reads a Stripe event without checking its signature: for a
// payload verified before, such as one the payment-event bus recorded raw
// before it carried decoded events.
func DecodeEvent(payload []byte) (cloud.PaymentEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(payload, &w); err != nil {
		return cloud.PaymentEvent{}, fmt.Errorf("stripepay: decode webhook event: %w", err)
	}
	if w.ID == "" || w.Type == "" {
		return cloud.PaymentEvent{}, errors.New("stripepay: decode webhook event: missing id or type")
	}
	ev := cloud.PaymentEvent{ID: w.ID, Type: w.Type, Created: time.Unix(w.Created, 0)}
	if !strings.HasPrefix(w.Type, "checkout.session.") {
		return ev, nil
	}
	var s wireSession
	if err := json.Unmarshal(w.Data.Object, &s); err != nil || s.Object != "checkout.session" {
		return cloud.PaymentEvent{}, fmt.Errorf("stripepay: decode %s event %s: data.object is not a checkout session", w.Type, w.ID)
	}
	ev.SessionID = s.ID
	ev.ReservationID = s.ClientReferenceID
	if ev.ReservationID == "" {
		ev.ReservationID = s.Metadata["reservation_id"]
	}
	ev.PaymentStatus = s.PaymentStatus
	ev.PaymentIntentID = expandableID(s.PaymentIntent)
	return ev, nil
}

// expandableID reads a field Stripe sends as an id string or, when
// expanded, as an object with an id.
func expandableID(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var obj struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &obj)
	return obj.ID
}
