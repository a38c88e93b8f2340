package stripefake_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

const (
	testKey    = "sk_test_parkgate"
	testSecret = "whsec_test_parkgate"
)

// receiver is a webhook endpoint that records what it got and fails the
// first failFirst deliveries.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	got       []delivery
}

type delivery struct {
	body   []byte
	sig    string
	status int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	status := http.StatusOK
	if len(rc.got) < rc.failFirst {
		status = http.StatusInternalServerError
	}
	rc.got = append(rc.got, delivery{body: body, sig: r.Header.Get("Stripe-Signature"), status: status})
	w.WriteHeader(status)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

type bundle struct {
	fake   *stripefake.Fake
	server *httptest.Server
	api    *client.API
	recv   *receiver
}

func setup(t *testing.T, opts stripefake.Options) bundle {
	t.Helper()
	if opts.RetryBase == 0 {
		opts.RetryBase = 5 * time.Millisecond
	}
	f := stripefake.New(opts)
	srv := httptest.NewServer(f)
	recv := &receiver{}
	hook := httptest.NewServer(recv)
	f.SetWebhook(hook.URL, testSecret)
	t.Cleanup(func() {
		f.Close()
		hook.Close()
		srv.Close()
	})
	return bundle{fake: f, server: srv, api: newAPI(srv.URL, testKey), recv: recv}
}

func newAPI(base, key string) *client.API {
	be := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(base),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return client.New(key, &stripe.Backends{API: be, Connect: be, Uploads: be})
}

func sessionParams(ref string) *stripe.CheckoutSessionParams {
	p := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL:        stripe.String("https://parkgate.test/ok?s={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String("https://parkgate.test/cancel"),
		ClientReferenceID: stripe.String(ref),
		ExpiresAt:         stripe.Int64(time.Now().Add(45 * time.Minute).Unix()),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("eur"),
				UnitAmount:  stripe.Int64(450),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("Parking")},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{"reservation_id": ref},
		},
	}
	p.AddMetadata("reservation_id", ref)
	p.AddMetadata("lot_id", "lot-1")
	return p
}

func stripeErr(t *testing.T, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("want *stripe.Error, got %T %v", err, err)
	}
	return se
}

func flush(t *testing.T, f *stripefake.Fake) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutSession(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})

	exp := time.Now().Add(45 * time.Minute).Unix()
	p := sessionParams("res-1")
	p.ExpiresAt = stripe.Int64(exp)
	s, err := b.api.CheckoutSessions.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.ID, "cs_test_") || s.Object != "checkout.session" {
		t.Errorf("id %q object %q", s.ID, s.Object)
	}
	if s.URL != b.server.URL+"/pay/"+s.ID {
		t.Errorf("url %q", s.URL)
	}
	if s.Status != stripe.CheckoutSessionStatusOpen || s.PaymentStatus != stripe.CheckoutSessionPaymentStatusUnpaid {
		t.Errorf("status %q payment_status %q", s.Status, s.PaymentStatus)
	}
	if s.AmountTotal != 450 || s.Currency != "eur" || s.ExpiresAt != exp || s.Mode != "payment" {
		t.Errorf("amount %d currency %q expires_at %d mode %q", s.AmountTotal, s.Currency, s.ExpiresAt, s.Mode)
	}
	if s.ClientReferenceID != "res-1" || s.Metadata["reservation_id"] != "res-1" || s.Metadata["lot_id"] != "lot-1" {
		t.Errorf("client_reference_id %q metadata %v", s.ClientReferenceID, s.Metadata)
	}
	if s.PaymentIntent != nil {
		t.Errorf("payment_intent %v before payment", s.PaymentIntent)
	}
	rec, _ := b.fake.Session(s.ID)
	if rec.PaymentIntentMetadata["reservation_id"] != "res-1" || rec.LineItems[0].Name != "Parking" {
		t.Errorf("recorded %+v", rec)
	}

	got, err := b.api.CheckoutSessions.Get(s.ID, nil)
	if err != nil || got.ID != s.ID {
		t.Fatalf("get: %v %v", got, err)
	}

	expired, err := b.api.CheckoutSessions.Expire(s.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if expired.Status != stripe.CheckoutSessionStatusExpired || expired.URL != "" {
		t.Errorf("after expire: status %q url %q", expired.Status, expired.URL)
	}
	_, err = b.api.CheckoutSessions.Expire(s.ID, nil)
	se := stripeErr(t, err)
	if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest ||
		se.Msg != `Only Checkout Sessions with a status in ["open"] can be expired.` {
		t.Errorf("expire twice: %+v", se)
	}
	if _, err := b.fake.Pay(s.ID); !errors.Is(err, stripefake.ErrNotOpen) {
		t.Errorf("pay expired: %v", err)
	}

	_, err = b.api.CheckoutSessions.Get("cs_test_missing", nil)
	if se := stripeErr(t, err); se.HTTPStatusCode != 404 || se.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("missing: %+v", se)
	}

	flush(t, b.fake)
	evs := b.fake.Events()
	if len(evs) != 1 || evs[0].Type != "checkout.session.expired" || evs[0].Deliveries != 1 {
		t.Fatalf("events %+v", evs)
	}
	var ev struct {
		Request struct{ ID string } `json:"request"`
	}
	_ = json.Unmarshal(evs[0].Payload, &ev)
	if !strings.HasPrefix(ev.Request.ID, "req_") {
		t.Errorf("api-triggered event request id %q", ev.Request.ID)
	}
}

func TestCreateSessionValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	tests := []struct {
		name  string
		edit  func(*stripe.CheckoutSessionParams)
		param string
		msg   string
	}{
		{"ExpiresTooSoon", func(p *stripe.CheckoutSessionParams) {
			p.ExpiresAt = stripe.Int64(time.Now().Add(29 * time.Minute).Unix())
		}, "expires_at", "at least 30 minutes"},
		{"ExpiresTooLate", func(p *stripe.CheckoutSessionParams) {
			p.ExpiresAt = stripe.Int64(time.Now().Add(24*time.Hour + time.Minute).Unix())
		}, "expires_at", "less than 24 hours"},
		{"MissingMode", func(p *stripe.CheckoutSessionParams) { p.Mode = nil }, "mode", "Missing required param: mode."},
		{"MissingSuccessURL", func(p *stripe.CheckoutSessionParams) { p.SuccessURL = nil }, "success_url", "Missing required param"},
		{"MissingQuantity", func(p *stripe.CheckoutSessionParams) { p.LineItems[0].Quantity = nil }, "line_items[0][quantity]", "Missing required param"},
		{"MissingName", func(p *stripe.CheckoutSessionParams) { p.LineItems[0].PriceData.ProductData = nil },
			"line_items[0][price_data][product_data][name]", "Missing required param"},
		{"NoLineItems", func(p *stripe.CheckoutSessionParams) { p.LineItems = nil }, "line_items", "at least one line item"},
		{"AmountTooLarge", func(p *stripe.CheckoutSessionParams) {
			p.LineItems[0].PriceData.UnitAmount = stripe.Int64(50_000_000)
			p.LineItems[0].Quantity = stripe.Int64(2)
		}, "", "no more than 99999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sessionParams("res-v")
			tt.edit(p)
			_, err := b.api.CheckoutSessions.New(p)
			se := stripeErr(t, err)
			if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest || se.Param != tt.param || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("got %d %s param %q: %s", se.HTTPStatusCode, se.Type, se.Param, se.Msg)
			}
		})
	}
	if n := len(b.fake.Sessions()); n != 0 {
		t.Errorf("%d sessions created by invalid requests", n)
	}
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	s, err := b.api.CheckoutSessions.New(sessionParams("res-r"))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := b.fake.Pay(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	paid, _ := b.api.CheckoutSessions.Get(s.ID, nil)
	if paid.Status != "complete" || paid.PaymentStatus != "paid" || paid.PaymentIntent == nil || paid.PaymentIntent.ID != pi {
		t.Fatalf("after pay: %+v", paid)
	}

	r1, err := b.api.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi), Amount: stripe.Int64(100)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r1.ID, "re_") || r1.Status != stripe.RefundStatusSucceeded || r1.Amount != 100 || r1.PaymentIntent.ID != pi {
		t.Errorf("refund %+v", r1)
	}
	_, err = b.api.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi), Amount: stripe.Int64(351)})
	if se := stripeErr(t, err); se.Code != stripe.ErrorCodeAmountTooLarge {
		t.Errorf("too large: %+v", se)
	}
	r2, err := b.api.Refunds.New(&stripe.RefundParams{Charge: stripe.String(r1.Charge.ID)})
	if err != nil || r2.Amount != 350 {
		t.Fatalf("rest: %+v %v", r2, err)
	}
	_, err = b.api.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)})
	if se := stripeErr(t, err); se.HTTPStatusCode != 400 || se.Code != stripe.ErrorCodeChargeAlreadyRefunded {
		t.Errorf("already refunded: %+v", se)
	}
	_, err = b.api.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String("pi_nope")})
	if se := stripeErr(t, err); se.HTTPStatusCode != 404 {
		t.Errorf("unknown pi: %+v", se)
	}

	lp := &stripe.RefundListParams{PaymentIntent: stripe.String(pi)}
	lp.Limit = stripe.Int64(1) // forces the iterator through has_more and starting_after
	var ids []string
	it := b.api.Refunds.List(lp)
	for it.Next() {
		ids = append(ids, it.Refund().ID)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{r2.ID, r1.ID}) {
		t.Errorf("list %v, want newest first %v", ids, []string{r2.ID, r1.ID})
	}
	if n := len(b.fake.Refunds()); n != 2 {
		t.Errorf("%d refunds", n)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})

	p := sessionParams("res-i")
	p.SetIdempotencyKey("hold-res-i")
	first, err := b.api.CheckoutSessions.New(p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.api.CheckoutSessions.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: id %s vs %s, replayed header %q", again.ID, first.ID, again.LastResponse.Header.Get("Idempotent-Replayed"))
	}
	if first.LastResponse.Header.Get("Idempotent-Replayed") != "" {
		t.Error("first response marked as replayed")
	}

	changed := sessionParams("res-other")
	changed.SetIdempotencyKey("hold-res-i")
	_, err = b.api.CheckoutSessions.New(changed)
	if se := stripeErr(t, err); se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeIdempotency {
		t.Errorf("different params: %+v", se)
	}

	rp := &stripe.RefundParams{PaymentIntent: stripe.String("pi_x")}
	rp.SetIdempotencyKey("hold-res-i")
	_, err = b.api.Refunds.New(rp)
	if se := stripeErr(t, err); se.Type != stripe.ErrorTypeIdempotency || !strings.Contains(se.Msg, "same endpoint") {
		t.Errorf("different endpoint: %+v", se)
	}

	other, err := newAPI(b.server.URL, "sk_test_someone_else").CheckoutSessions.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID {
		t.Error("idempotency key shared across secret keys")
	}

	// A failed request saves nothing: fixing it and retrying with the same
	// key must execute.
	bad := sessionParams("res-j")
	bad.Mode = nil
	bad.SetIdempotencyKey("hold-res-j")
	if _, err := b.api.CheckoutSessions.New(bad); err == nil {
		t.Fatal("want error")
	}
	good := sessionParams("res-j")
	good.SetIdempotencyKey("hold-res-j")
	if _, err := b.api.CheckoutSessions.New(good); err != nil {
		t.Errorf("retry after failure: %v", err)
	}

	if n := len(b.fake.Sessions()); n != 3 {
		t.Errorf("%d sessions, want 3", n)
	}
}

func TestIdempotencyKeyLifetime(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	b := setup(t, stripefake.Options{Now: clk.Now})
	p := sessionParams("res-k")
	p.ExpiresAt = nil // the params are resent a day later
	p.SetIdempotencyKey("k")
	first, err := b.api.CheckoutSessions.New(p)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	later, err := b.api.CheckoutSessions.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if later.ID == first.ID {
		t.Error("key still honoured after 24h")
	}
}

func TestWebhookSignedLikeStripe(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	hook := httptest.NewServer(b.recv)
	t.Cleanup(hook.Close)
	// Two secrets, as during a secret roll: either must verify on its own.
	b.fake.SetWebhook(hook.URL, "whsec_old", "whsec_new")

	s, err := b.api.CheckoutSessions.New(sessionParams("res-w"))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := b.fake.Pay(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	got := b.recv.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	for _, secret := range []string{"whsec_old", "whsec_new"} {
		ev, err := webhook.ConstructEventWithOptions(got[0].body, got[0].sig, secret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil {
			t.Fatalf("stripe-go rejects the fake's signature with %s: %v", secret, err)
		}
		if ev.Type != "checkout.session.completed" || ev.APIVersion != stripefake.APIVersion || !strings.HasPrefix(ev.ID, "evt_") {
			t.Errorf("event %s %s %s", ev.ID, ev.Type, ev.APIVersion)
		}
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
			t.Fatal(err)
		}
		if cs.ID != s.ID || cs.PaymentStatus != "paid" || cs.PaymentIntent == nil || cs.PaymentIntent.ID != pi ||
			cs.ClientReferenceID != "res-w" || cs.Metadata["reservation_id"] != "res-w" {
			t.Errorf("session in event: %+v", cs)
		}
	}
	if _, err := webhook.ConstructEventWithOptions(got[0].body, got[0].sig, testSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err == nil {
		t.Error("a secret the endpoint does not have verified")
	}
	// The helper tests in other packages use must agree with Stripe's own.
	now := time.Now()
	want := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: got[0].body, Secret: "whsec_x", Timestamp: now})
	if h := stripefake.SignatureHeader(got[0].body, now, "whsec_x"); h != want.Header {
		t.Errorf("SignatureHeader %q, stripe-go %q", h, want.Header)
	}
}

func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{RetryBase: 10 * time.Millisecond, MaxAttempts: 5})
	b.recv.failFirst = 2
	s, err := b.api.CheckoutSessions.New(sessionParams("res-retry"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := b.fake.Pay(s.ID); err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("three attempts took %v, want backoff of 10ms then 20ms", d)
	}
	got := b.recv.deliveries()
	if len(got) != 3 || got[0].status != 500 || got[1].status != 500 || got[2].status != 200 {
		t.Fatalf("deliveries %+v", got)
	}
	for _, d := range got {
		if string(d.body) != string(got[0].body) {
			t.Error("retry changed the payload")
		}
		if _, err := webhook.ConstructEventWithOptions(d.body, d.sig, testSecret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
			t.Error(err)
		}
	}
	ev := b.fake.Events()[0]
	if ev.Attempts != 3 || ev.Deliveries != 1 || ev.LastStatus != 200 {
		t.Errorf("event record %+v", ev)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{RetryBase: time.Millisecond, MaxAttempts: 3})
	b.recv.failFirst = 100
	s, _ := b.api.CheckoutSessions.New(sessionParams("res-gone"))
	if err := b.fake.Expire(s.ID); err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	ev := b.fake.Events()[0]
	if ev.Attempts != 3 || ev.Deliveries != 0 || ev.LastStatus != 500 {
		t.Errorf("event record %+v", ev)
	}

	// An endpoint that is not listening is a connection error, retried too.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	b.fake.SetWebhook(dead.URL, testSecret)
	if err := b.fake.Redeliver(ev.ID); err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	ev = b.fake.Events()[0]
	if ev.Attempts != 6 || ev.LastStatus != 0 || ev.LastError == "" {
		t.Errorf("after dead endpoint %+v", ev)
	}
}

func TestRedeliverOutOfOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	b.fake.PauseWebhooks()
	s1, _ := b.api.CheckoutSessions.New(sessionParams("res-a"))
	s2, _ := b.api.CheckoutSessions.New(sessionParams("res-b"))
	if _, err := b.fake.Pay(s1.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.fake.Expire(s2.ID); err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	if n := len(b.recv.deliveries()); n != 0 {
		t.Fatalf("%d deliveries while paused", n)
	}
	evs := b.fake.Events()
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	if err := b.fake.Redeliver(evs[1].ID, evs[0].ID, evs[0].ID); err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	var order []string
	for _, d := range b.recv.deliveries() {
		var e struct{ ID string }
		_ = json.Unmarshal(d.body, &e)
		order = append(order, e.ID)
	}
	if want := []string{evs[1].ID, evs[0].ID, evs[0].ID}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	b.fake.ResumeWebhooks() // both were redelivered: nothing is left held
	flush(t, b.fake)
	if n := len(b.recv.deliveries()); n != 3 {
		t.Errorf("%d deliveries after resume", n)
	}
	if err := b.fake.Redeliver("evt_nope"); err == nil {
		t.Error("redeliver of unknown event succeeded")
	}
}

func TestAsyncPayment(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	s, _ := b.api.CheckoutSessions.New(sessionParams("res-async"))
	pi, err := b.fake.PayAsync(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.api.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)})
	if se := stripeErr(t, err); se.Code != stripe.ErrorCodeChargeNotRefundable {
		t.Errorf("refund of pending payment: %+v", se)
	}
	if err := b.fake.SettleAsync(s.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := b.fake.SettleAsync(s.ID, true); err == nil {
		t.Error("settled twice")
	}
	if _, err := b.api.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)}); err != nil {
		t.Errorf("refund after settlement: %v", err)
	}
	s2, _ := b.api.CheckoutSessions.New(sessionParams("res-async-2"))
	if _, err := b.fake.PayAsync(s2.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.fake.SettleAsync(s2.ID, false); err != nil {
		t.Fatal(err)
	}
	flush(t, b.fake)
	var types []string
	var statuses []string
	for _, e := range b.fake.Events() {
		var ev struct {
			Type string
			Data struct {
				Object struct {
					PaymentStatus string `json:"payment_status"`
				}
			}
		}
		_ = json.Unmarshal(e.Payload, &ev)
		types = append(types, ev.Type)
		statuses = append(statuses, ev.Data.Object.PaymentStatus)
	}
	wantTypes := []string{"checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.completed", "checkout.session.async_payment_failed"}
	if !reflect.DeepEqual(types, wantTypes) || !reflect.DeepEqual(statuses, []string{"unpaid", "paid", "unpaid", "unpaid"}) {
		t.Errorf("types %v statuses %v", types, statuses)
	}
}

func TestExpiresOnItsOwn(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	b := setup(t, stripefake.Options{Now: clk.Now})
	b.fake.SetWebhook("") // the receiver would reject stamps from the fake clock
	p := sessionParams("res-late")
	p.ExpiresAt = stripe.Int64(clk.Now().Add(31 * time.Minute).Unix())
	s1, _ := b.api.CheckoutSessions.New(p)
	s2, _ := b.api.CheckoutSessions.New(p)
	clk.Add(31 * time.Minute)
	got, err := b.api.CheckoutSessions.Get(s1.ID, nil)
	if err != nil || got.Status != stripe.CheckoutSessionStatusExpired {
		t.Fatalf("get after expires_at: %v %v", got, err)
	}
	if _, err := b.fake.Pay(s2.ID); !errors.Is(err, stripefake.ErrNotOpen) {
		t.Errorf("pay after expires_at: %v", err)
	}
	if n := b.fake.ExpireDue(); n != 0 {
		t.Errorf("ExpireDue expired %d already expired sessions", n)
	}
	if evs := b.fake.Events(); len(evs) != 2 || evs[0].Type != "checkout.session.expired" {
		t.Errorf("events %+v", evs)
	}
}

func TestSweepExpires(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	b := setup(t, stripefake.Options{Now: clk.Now, SweepInterval: 2 * time.Millisecond})
	types := make(chan string, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type string }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		types <- ev.Type
	}))
	t.Cleanup(hook.Close)
	b.fake.SetWebhook(hook.URL, testSecret)
	p := sessionParams("res-sweep")
	p.ExpiresAt = nil
	if _, err := b.api.CheckoutSessions.New(p); err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	select {
	case typ := <-types:
		if typ != "checkout.session.expired" {
			t.Errorf("got %s", typ)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sweeper sent nothing")
	}
}

func TestOutage(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	s, _ := b.api.CheckoutSessions.New(sessionParams("res-o"))

	b.fake.SetDown(true)
	_, err := b.api.CheckoutSessions.Get(s.ID, nil)
	if se := stripeErr(t, err); se.HTTPStatusCode != 500 || se.Type != stripe.ErrorTypeAPI {
		t.Errorf("down: %+v", se)
	}
	b.fake.SetOutage(stripefake.OutageRateLimit)
	_, err = b.api.CheckoutSessions.Get(s.ID, nil)
	if se := stripeErr(t, err); se.HTTPStatusCode != 429 {
		t.Errorf("rate limited: %+v", se)
	}
	b.fake.SetOutage(stripefake.OutageDropConnection)
	_, err = b.api.CheckoutSessions.Get(s.ID, nil)
	var se *stripe.Error
	if err == nil || errors.As(err, &se) {
		t.Errorf("dropped connection: %v", err)
	}
	// The simulator's side keeps working through an API outage.
	if _, err := b.fake.Pay(s.ID); err != nil {
		t.Errorf("pay during outage: %v", err)
	}
	b.fake.SetDown(false)
	if _, err := b.api.CheckoutSessions.Get(s.ID, nil); err != nil {
		t.Errorf("after outage: %v", err)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{APIKeys: []string{testKey}})
	_, err := newAPI(b.server.URL, "sk_test_wrong_key_1234").CheckoutSessions.Get("cs_test_x", nil)
	if se := stripeErr(t, err); se.HTTPStatusCode != 401 || !strings.Contains(se.Msg, "Invalid API Key") || strings.Contains(se.Msg, "wrong_key") {
		t.Errorf("wrong key: %+v", se)
	}
	resp, err := http.Get(b.server.URL + "/v1/checkout/sessions/cs_test_x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no key: %d", resp.StatusCode)
	}
	// Basic auth with the key as user name, as curl -u sends it.
	req, _ := http.NewRequest(http.MethodGet, b.server.URL+"/v1/checkout/sessions/cs_test_x", nil)
	req.SetBasicAuth(testKey, "")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("basic auth: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, b.server.URL+"/v1/customers", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "Unrecognized request URL") {
		t.Errorf("unknown route: %d %s", resp.StatusCode, body)
	}
}

func TestPayPage(t *testing.T) {
	t.Parallel()
	b := setup(t, stripefake.Options{})
	s, _ := b.api.CheckoutSessions.New(sessionParams("res-page"))
	resp, err := http.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(s.URL, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "https://parkgate.test/ok?s="+s.ID {
		t.Errorf("redirect %d %q", resp.StatusCode, loc)
	}
	if got, _ := b.fake.Session(s.ID); got.PaymentStatus != "paid" {
		t.Errorf("payment_status %q", got.PaymentStatus)
	}
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
