package alerts_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/alerts"
	"github.com/stripe/stripe-go/v76/webhook"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_1","type":"edge.offline","created":"2026-12-05T17:00:00Z","data":{}}`)
	now := time.Now()
	header := alerts.Sign("whsec_test", body, now)

	cases := []struct {
		name   string
		body   []byte
		header string
		secret string
		at     time.Time
		want   error
	}{
		{"Valid", body, header, "whsec_test", now, nil},
		{"TamperedBody", bytes.Replace(body, []byte("evt_1"), []byte("evt_9"), 1), header, "whsec_test", now, alerts.ErrBadSignature},
		{"OtherSecret", body, header, "whsec_other", now, alerts.ErrBadSignature},
		{"TooOld", body, header, "whsec_test", now.Add(6 * time.Minute), alerts.ErrTooOld},
		{"NoHeader", body, "", "whsec_test", now, alerts.ErrNoSignature},
		{"RotatingSecrets", body, alerts.Sign("whsec_old", body, now) + ",v1=" + header[len("t=1234567890,v1="):], "whsec_test", now, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := alerts.Verify(c.body, c.header, c.secret, 0, c.at); !errors.Is(err, c.want) {
				t.Errorf("Verify: %v, want %v", err, c.want)
			}
		})
	}
}

// TestSignMatchesStripe: the scheme is Stripe's, so a receiver may verify
// with Stripe's own library (its Stripe-Signature parser, our header value).
func TestSignMatchesStripe(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_2","type":"payment.refunded","data":{"amount":300}}`)
	header := alerts.Sign("whsec_stripe", body, time.Now())
	if err := webhook.ValidatePayload(body, header, "whsec_stripe"); err != nil {
		t.Errorf("stripe-go rejects our signature: %v", err)
	}
	if err := webhook.ValidatePayload(append(body, ' '), header, "whsec_stripe"); err == nil {
		t.Error("stripe-go accepts a tampered body")
	}
}
