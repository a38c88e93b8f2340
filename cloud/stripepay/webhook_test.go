package stripepay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// completedEvent carries an api_version other than stripe-go's on purpose:
// verification must not depend on it.
const completedEvent = `{
  "id": "evt_1",
  "object": "event",
  "api_version": "2020-08-27",
  "created": 1764064800,
  "type": "checkout.session.completed",
  "data": {"object": {
    "id": "cs_test_1", "object": "checkout.session",
    "client_reference_id": "res-9", "metadata": {"reservation_id": "res-9", "lot_id": "lot-7"},
    "payment_status": "paid", "payment_intent": "pi_1", "status": "complete"
  }}
}`

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	now := time.Unix(1764064800, 0)
	payload := []byte(completedEvent)
	sign := func(at time.Time, secrets ...string) string {
		return stripefake.SignatureHeader(payload, at, secrets...)
	}
	valid := sign(now, "whsec_a")
	ts := strconv.FormatInt(now.Unix(), 10)
	a := []string{"whsec_a"}

	tests := []struct {
		name    string
		payload []byte
		header  string
		secrets []string
		ok      bool
	}{
		{"Valid", payload, valid, a, true},
		{"ValidAtToleranceEdge", payload, sign(now.Add(-5*time.Minute), "whsec_a"), a, true},
		{"ForgedSignature", payload, "t=" + ts + ",v1=" + strings.Repeat("ab", 32), a, false},
		{"WrongSecret", payload, valid, []string{"whsec_b"}, false},
		{"Stale", payload, sign(now.Add(-5*time.Minute-time.Second), "whsec_a"), a, false},
		{"Future", payload, sign(now.Add(5*time.Minute+time.Second), "whsec_a"), a, false},
		{"TamperedBody", []byte(strings.Replace(completedEvent, "res-9", "res-8", 1)), valid, a, false},
		{"TimestampSwapped", payload, strings.Replace(valid, "t="+ts, "t="+strconv.FormatInt(now.Unix()+1, 10), 1), a, false},
		{"MissingHeader", payload, "", a, false},
		{"Garbage", payload, "garbage", a, false},
		{"NoTimestamp", payload, strings.Replace(valid, "t="+ts+",", "", 1), a, false},
		{"BadTimestamp", payload, strings.Replace(valid, "t="+ts, "t=yesterday", 1), a, false},
		{"TwoTimestamps", payload, "t=1," + valid, a, false},
		{"NoV1", payload, "t=" + ts + ",v0=abc", a, false},
		{"ExtraSchemesAndBadHex", payload, valid + ",v0=zz,v1=nothex,v9=1", a, true},
		// While a secret is rolled Stripe signs with both, and the endpoint
		// may be configured with either or both.
		{"RotatedKnowsNew", payload, sign(now, "whsec_old", "whsec_new"), []string{"whsec_new"}, true},
		{"RotatedKnowsOld", payload, sign(now, "whsec_old", "whsec_new"), []string{"whsec_old"}, true},
		{"RotatedKnowsBoth", payload, sign(now, "whsec_new"), []string{"whsec_old", "whsec_new"}, true},
		{"RotatedNeither", payload, sign(now, "whsec_old", "whsec_new"), []string{"whsec_other"}, false},
	}
	want := cloud.PaymentEvent{ID: "evt_1", Type: "checkout.session.completed", Created: now,
		SessionID: "cs_test_1", ReservationID: "res-9", PaymentStatus: "paid", PaymentIntentID: "pi_1"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := VerifyWebhook(tt.payload, tt.header, tt.secrets, DefaultTolerance, now)
			if !tt.ok {
				if !errors.Is(err, cloud.ErrInvalidSignature) {
					t.Errorf("got %v, want cloud.ErrInvalidSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("got %+v\nwant %+v", ev, want)
			}
		})
	}
}

func TestVerifyWebhookDecoding(t *testing.T) {
	t.Parallel()
	now := time.Now()
	verify := func(body string) (cloud.PaymentEvent, error) {
		return VerifyWebhook([]byte(body), stripefake.SignatureHeader([]byte(body), now, "whsec_a"),
			[]string{"whsec_a"}, 0, now)
	}
	t.Run("ExpandedPaymentIntentAndMetadataOnly", func(t *testing.T) {
		ev, err := verify(`{"id":"evt_2","type":"checkout.session.async_payment_succeeded","created":1,
			"data":{"object":{"id":"cs_2","object":"checkout.session","client_reference_id":null,
			"metadata":{"reservation_id":"res-2"},"payment_status":"paid","payment_intent":{"id":"pi_2","object":"payment_intent"}}}}`)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ReservationID != "res-2" || ev.PaymentIntentID != "pi_2" || ev.SessionID != "cs_2" {
			t.Errorf("got %+v", ev)
		}
	})
	t.Run("OtherType", func(t *testing.T) {
		ev, err := verify(`{"id":"evt_3","type":"charge.refunded","created":1,"data":{"object":{"id":"ch_1","object":"charge"}}}`)
		if err != nil || ev.Type != "charge.refunded" || ev.SessionID != "" {
			t.Errorf("got %+v %v", ev, err)
		}
	})
	t.Run("SignedButNotJSON", func(t *testing.T) {
		if _, err := verify(`not json`); err == nil || errors.Is(err, cloud.ErrInvalidSignature) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("CheckoutTypeWithOtherObject", func(t *testing.T) {
		if _, err := verify(`{"id":"evt_4","type":"checkout.session.completed","created":1,"data":{"object":{"object":"charge"}}}`); err == nil {
			t.Error("want error")
		}
	})
	t.Run("NoSecrets", func(t *testing.T) {
		_, err := VerifyWebhook([]byte(completedEvent), "t=1,v1=00", nil, 0, now)
		if err == nil || errors.Is(err, cloud.ErrInvalidSignature) {
			t.Errorf("got %v: a missing configuration is not the sender's fault", err)
		}
	})
}

// TestWebhookFromFake runs the whole path: the fake signs and delivers, a
// handler verifies with the real clock and extracts the session.
func TestWebhookFromFake(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	got := make(chan cloud.PaymentEvent, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := VerifyWebhook(body, r.Header.Get("Stripe-Signature"), []string{"whsec_old", "whsec_new"}, DefaultTolerance, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- ev
	}))
	t.Cleanup(hook.Close)
	b.fake.SetWebhook(hook.URL, "whsec_new")

	ctx := context.Background()
	s, err := b.client.CreateCheckoutSession(ctx, checkout("res-wh", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := b.fake.Pay(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Type != "checkout.session.completed" || ev.SessionID != s.ID || ev.ReservationID != "res-wh" ||
			ev.PaymentStatus != "paid" || ev.PaymentIntentID != pi || !strings.HasPrefix(ev.ID, "evt_") {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered")
	}
}
