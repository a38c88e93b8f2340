package stripepay

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
	"github.com/stripe/stripe-go/v76/form"
)

var fuzzNow = time.Unix(1764064800, 0)

// FuzzSignatureHeader: whatever Stripe-Signature header arrives with a good
// payload, it is either refused as an invalid signature (never another
// error, never a panic) or it carries a v1 signature really made with the
// secret at a timestamp within the tolerance.
func FuzzSignatureHeader(f *testing.F) {
	payload := []byte(completedEvent)
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	for _, h := range []string{
		stripefake.SignatureHeader(payload, fuzzNow, "whsec_a"),
		stripefake.SignatureHeader(payload, fuzzNow, "whsec_b", "whsec_a"),
		"t=" + ts + ",v0=00,v1=" + strings.Repeat("ab", 32),
		"t=" + ts + ",t=" + ts + ",v1=zz",
		"t=-9223372036854775808,v1=" + strings.Repeat("0", 64),
		"t=99999999999999999999", "v1=", ",", "=", "t", " t = 1 , v1 = 2 ", "",
	} {
		f.Add(h)
	}
	want, err := DecodeEvent(payload)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		ev, err := VerifyWebhook(payload, header, []string{"whsec_a"}, 0, fuzzNow)
		if err != nil {
			if !errors.Is(err, cloud.ErrInvalidSignature) {
				t.Fatalf("header %q: refused with %v, not an invalid signature", header, err)
			}
			return
		}
		if !reflect.DeepEqual(ev, want) {
			t.Fatalf("header %q: event %+v, want %+v", header, ev, want)
		}
		at, sigs, perr := parseSignatureHeader(header)
		if perr != nil || !signedByAny(payload, at, sigs, []string{"whsec_a"}) {
			t.Fatalf("header %q accepted without a signature by the secret (%v)", header, perr)
		}
		if d := fuzzNow.Sub(time.Unix(at, 0)); d > DefaultTolerance || d < -DefaultTolerance {
			t.Fatalf("header %q accepted %v from now", header, d)
		}
	})
}

// FuzzVerifyWebhook: a payload correctly signed decodes exactly as
// DecodeEvent reads it (the signature adds a check, never a different
// reading), and the same payload changed by one byte is refused.
func FuzzVerifyWebhook(f *testing.F) {
	for _, p := range []string{
		completedEvent,
		`{"id":"evt_2","type":"checkout.session.expired","created":1,"data":{"object":{"id":"cs_2","object":"checkout.session","metadata":{"reservation_id":"r"},"payment_intent":{"id":"pi_2"}}}}`,
		`{"id":"evt_3","type":"charge.refunded","data":{"object":{}}}`,
		`{"id":"evt_4","type":"checkout.session.completed","data":{"object":{"object":"payment_intent"}}}`,
		`{"id":"","type":"x"}`, `{"id":"e","type":"checkout.session.completed","data":{"object":"x"}}`,
		`[]`, `null`, ``, `{"id":1}`,
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		header := stripefake.SignatureHeader(payload, fuzzNow, "whsec_a")
		got, gerr := VerifyWebhook(payload, header, []string{"whsec_a"}, 0, fuzzNow)
		want, werr := DecodeEvent(payload)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("payload %q: verified %+v (%v), decoded %+v (%v)", payload, got, gerr, want, werr)
		}
		if gerr != nil && errors.Is(gerr, cloud.ErrInvalidSignature) {
			t.Fatalf("payload %q: a correct signature refused: %v", payload, gerr)
		}
		tampered := append([]byte(nil), payload...)
		if len(tampered) == 0 {
			tampered = []byte{' '}
		} else {
			tampered[len(tampered)/2] ^= 1
		}
		if _, err := VerifyWebhook(tampered, header, []string{"whsec_a"}, 0, fuzzNow); !errors.Is(err, cloud.ErrInvalidSignature) {
			t.Fatalf("payload %q changed to %q: %v, want an invalid signature", payload, tampered, err)
		}
	})
}

// FuzzDecodeEvent: any body decodes to an event with an id and a type, or
// to an error; a checkout session event's reservation comes from the
// session and nowhere else.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(completedEvent))
	f.Add([]byte(`{"id":"e","type":"checkout.session.completed","data":{"object":{"object":"checkout.session","client_reference_id":"","metadata":{"reservation_id":"r2"},"payment_intent":null}}}`))
	f.Add([]byte(`{"id":"e","type":"checkout.session.async_payment_succeeded","data":{"object":{"object":"checkout.session","payment_intent":{"id":7}}}}`))
	f.Add([]byte(`{"id":"e","type":"invoice.paid","created":-62135596800}`))
	f.Add([]byte(`{"data":{"object":null}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := DecodeEvent(payload)
		if err != nil {
			if ev != (cloud.PaymentEvent{}) {
				t.Fatalf("payload %q: error %v with event %+v", payload, err, ev)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("payload %q: event without id or type: %+v", payload, ev)
		}
		if !strings.HasPrefix(ev.Type, "checkout.session.") && (ev.SessionID != "" || ev.ReservationID != "" || ev.PaymentIntentID != "") {
			t.Fatalf("payload %q: a %s event carries session fields: %+v", payload, ev.Type, ev)
		}
	})
}

// FuzzFormBody: formBody writes any names and values byte for byte as
// stripe-go's form.Values.Encode does, so the Checkout Session's request
// is the one stripe-go would send whatever a reservation, lot or return
// URL holds.
func FuzzFormBody(f *testing.F) {
	for _, c := range [][3]string{
		{"mode", "payment", "line_items[0][price_data][product_data][name]"},
		{"success_url", "https://x.example/ok?r=res 1&s={CHECKOUT_SESSION_ID}#ü", "metadata[lot_id]"},
		{"payment_intent_data[metadata][reservation_id]", "a+b=c&d%e", "[]"},
		{"]a[", "", "x[y]z[]"},
		{"", "\x00\xff", "ü[ß]"},
	} {
		f.Add(c[0], c[1], c[2])
	}
	f.Fuzz(func(t *testing.T, n1, v1, n2 string) {
		var got formBody
		want := &form.Values{}
		for _, p := range [][2]string{{n1, v1}, {n2, v1}, {"expires_at", n1}} {
			got.add(p[0], p[1])
			want.Add(p[0], p[1])
		}
		if string(got.b) != want.Encode() {
			t.Errorf("formBody wrote\n%s\nstripe-go encodes\n%s", got.b, want.Encode())
		}
	})
}
