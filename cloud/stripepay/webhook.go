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
)

// DefaultTolerance is how far a signature's timestamp may be from now, either
// way, before the event is refused as a possible replay.
const DefaultTolerance = 5 * time.Minute

// ErrInvalidSignature is returned for a webhook whose Stripe-Signature header
// is missing, malformed, matches no configured secret, or is too old or too
// far in the future.
var ErrInvalidSignature = errors.New("stripepay: invalid webhook signature")

// Event is a verified webhook event with the Checkout Session fields parkgate
// acts on. The session fields are empty for events of other types.
type Event struct {
	ID      string
	Type    string
	Created time.Time

	SessionID       string
	ReservationID   string // client_reference_id, else metadata reservation_id
	PaymentStatus   string // paid, unpaid or no_payment_required
	PaymentIntentID string

	// Raw is the payload as received, for the inbox.
	Raw []byte
}

// VerifyWebhook checks payload against sigHeader (t=<unix>,v1=<hex>,...) and
// decodes it. Any v1 signature made with any of secrets is accepted, so an
// endpoint's secret can be rolled: Stripe signs with old and new while both
// are live. The event's api_version is not checked: parsing is limited to
// fields stable across versions. tolerance <= 0 means DefaultTolerance.
//
// It does not use stripe-go's webhook.ConstructEvent: that reads the wall
// clock (no injected now), accepts timestamps from the future, and would
// parse the header and the body once per secret.
func VerifyWebhook(payload []byte, sigHeader string, secrets []string, tolerance time.Duration, now time.Time) (Event, error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if len(secrets) == 0 {
		return Event{}, errors.New("stripepay: no webhook secrets configured")
	}
	if sigHeader == "" {
		return Event{}, fmt.Errorf("%w: no signature header", ErrInvalidSignature)
	}
	ts, sigs, err := parseSignatureHeader(sigHeader)
	if err != nil {
		return Event{}, err
	}
	if !signedByAny(payload, ts, sigs, secrets) {
		return Event{}, fmt.Errorf("%w: no signature matches", ErrInvalidSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return Event{}, fmt.Errorf("%w: timestamp %d is %v from now", ErrInvalidSignature, ts, d.Round(time.Second))
	}
	ev, err := decodeEvent(payload)
	if err != nil {
		return Event{}, err
	}
	ev.Raw = payload
	return ev, nil
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
			return 0, nil, fmt.Errorf("%w: malformed header", ErrInvalidSignature)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || haveTS {
				return 0, nil, fmt.Errorf("%w: malformed timestamp", ErrInvalidSignature)
			}
			ts, haveTS = n, true
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	if !haveTS {
		return 0, nil, fmt.Errorf("%w: no timestamp", ErrInvalidSignature)
	}
	if len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%w: no v1 signature", ErrInvalidSignature)
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

func decodeEvent(payload []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(payload, &w); err != nil {
		return Event{}, fmt.Errorf("stripepay: decode webhook event: %w", err)
	}
	if w.ID == "" || w.Type == "" {
		return Event{}, errors.New("stripepay: decode webhook event: missing id or type")
	}
	ev := Event{ID: w.ID, Type: w.Type, Created: time.Unix(w.Created, 0)}
	if !strings.HasPrefix(w.Type, "checkout.session.") {
		return ev, nil
	}
	var s wireSession
	if err := json.Unmarshal(w.Data.Object, &s); err != nil || s.Object != "checkout.session" {
		return Event{}, fmt.Errorf("stripepay: decode %s event %s: data.object is not a checkout session", w.Type, w.ID)
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
