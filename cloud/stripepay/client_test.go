package stripepay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

const testKey = "sk_test_stripepay"

type bundle struct {
	client *Client
	fake   *stripefake.Fake
	server *httptest.Server
	hits   *atomic.Int64 // API requests that reached the server
}

// setup serves a fresh stripefake behind a request counter; wrap, if given,
// sits in front of the fake to inject failures.
func setup(t testing.TB, wrap func(http.Handler) http.Handler) bundle {
	t.Helper()
	fake := stripefake.New(stripefake.Options{RetryBase: 5 * time.Millisecond})
	var h http.Handler = fake
	if wrap != nil {
		h = wrap(h)
	}
	hits := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			hits.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		fake.Close()
	})
	return bundle{client: newClient(t, srv.URL, 5*time.Second), fake: fake, server: srv, hits: hits}
}

func newClient(t testing.TB, base string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(Config{
		SecretKey:  testKey,
		APIBase:    base,
		SuccessURL: "https://parkgate.test/paid?session={CHECKOUT_SESSION_ID}",
		CancelURL:  "https://parkgate.test/cancelled",
		Timeout:    timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkout(ref string, expiresAt time.Time) cloud.Checkout {
	return cloud.Checkout{
		ReservationID:  ref,
		LotID:          "lot-7",
		Description:    "Parking at Lot 7",
		Amount:         1250,
		Currency:       "EUR",
		ExpiresAt:      expiresAt,
		IdempotencyKey: "hold:" + ref,
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"NoSecretKey", Config{SuccessURL: "https://x"}},
		{"NoSuccessURL", Config{SecretKey: testKey}},
		{"BadBase", Config{SecretKey: testKey, SuccessURL: "https://x", APIBase: "api.stripe.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("want error")
			}
		})
	}
	c, err := New(Config{SecretKey: testKey, SuccessURL: "https://x"})
	if err != nil || c.cfg.APIBase != DefaultAPIBase || c.timeout != defaultTimeout {
		t.Errorf("defaults: %+v %v", c, err)
	}

	// retryablehttp refuses (by panicking) a logger it cannot use.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	var logs strings.Builder
	c, err = New(Config{SecretKey: testKey, SuccessURL: "https://x", APIBase: dead.URL,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refund(context.Background(), "pi_1", "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("got %v", err)
	}
	if !strings.Contains(logs.String(), "component=stripepay") {
		t.Errorf("no retry logs: %q", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestCreateCheckoutSession(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	exp := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	s, err := b.client.CreateCheckoutSession(context.Background(), checkout("res-1", exp))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.ID, "cs_test_") || s.URL != b.server.URL+"/pay/"+s.ID || !s.ExpiresAt.Equal(exp) {
		t.Errorf("session %+v", s)
	}
	got, ok := b.fake.Session(s.ID)
	if !ok {
		t.Fatal("session not at the fake")
	}
	if got.Mode != "payment" || got.AmountTotal != 1250 || got.Currency != "eur" || got.ClientReferenceID != "res-1" {
		t.Errorf("mode %q amount %d currency %q ref %q", got.Mode, got.AmountTotal, got.Currency, got.ClientReferenceID)
	}
	if len(got.LineItems) != 1 || got.LineItems[0] != (stripefake.LineItem{Name: "Parking at Lot 7", UnitAmount: 1250, Quantity: 1, Currency: "eur"}) {
		t.Errorf("line items %+v", got.LineItems)
	}
	wantMD := map[string]string{"reservation_id": "res-1", "lot_id": "lot-7"}
	for k, v := range wantMD {
		if got.Metadata[k] != v || got.PaymentIntentMetadata[k] != v {
			t.Errorf("metadata %v, payment intent metadata %v", got.Metadata, got.PaymentIntentMetadata)
		}
	}
	if got.IdempotencyKey != "hold:res-1" || got.SuccessURL != b.client.cfg.SuccessURL || got.CancelURL != b.client.cfg.CancelURL {
		t.Errorf("key %q urls %q %q", got.IdempotencyKey, got.SuccessURL, got.CancelURL)
	}
}

func TestCreateCheckoutSessionClampsExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := time.Now()
	tests := []struct {
		name   string
		want   time.Time
		lo, hi time.Duration // accepted expires_at, from now
	}{
		{"ShortHold", now.Add(10 * time.Minute), 42 * time.Minute, 42 * time.Minute},
		{"Past", now.Add(-time.Minute), 32 * time.Minute, 38 * time.Minute},
		{"TooLong", now.Add(30 * time.Hour), 24*time.Hour - 8*time.Minute, 24*time.Hour - 2*time.Minute},
		{"Within", now.Add(3 * time.Hour), 3 * time.Hour, 3*time.Hour + time.Second},
		{"Zero", time.Time{}, 24*time.Hour - time.Minute, 24*time.Hour + time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := b.client.CreateCheckoutSession(context.Background(), checkout("res-"+tt.name, tt.want))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := b.fake.Session(s.ID)
			if d := got.ExpiresAt.Sub(now); d < tt.lo-time.Second || d > tt.hi {
				t.Errorf("expires in %v, want %v..%v", d, tt.lo, tt.hi)
			}
			if !got.ExpiresAt.Equal(s.ExpiresAt) {
				t.Errorf("returned %v, fake has %v", s.ExpiresAt, got.ExpiresAt)
			}
		})
	}
}

func TestCreateCheckoutSessionIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	fixed := time.Now()
	b.client.now = func() time.Time { return fixed } // one clock for both calls
	r := checkout("res-2", fixed.Add(5*time.Minute))
	first, err := b.client.CreateCheckoutSession(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.client.CreateCheckoutSession(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || len(b.fake.Sessions()) != 1 {
		t.Errorf("second call made %s (first %s), %d sessions", again.ID, first.ID, len(b.fake.Sessions()))
	}
}

func TestCreateCheckoutSessionRetriesWithSameKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var keys []string
	b := setup(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			n := len(keys)
			mu.Unlock()
			if n == 1 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"try again"}}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	if _, err := b.client.CreateCheckoutSession(context.Background(), checkout("res-3", time.Time{})); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "hold:res-3" || keys[1] != keys[0] {
		t.Errorf("idempotency keys per attempt %q", keys)
	}
	if n := len(b.fake.Sessions()); n != 1 {
		t.Errorf("%d sessions", n)
	}
}

func TestCreateCheckoutSessionRejects(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		name string
		edit func(*cloud.Checkout)
	}{
		{"NoReservation", func(r *cloud.Checkout) { r.ReservationID = "" }},
		{"ZeroAmount", func(r *cloud.Checkout) { r.Amount = 0 }},
		{"BadCurrency", func(r *cloud.Checkout) { r.Currency = "euro" }},
		{"NoIdempotencyKey", func(r *cloud.Checkout) { r.IdempotencyKey = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := checkout("res-x", time.Time{})
			tt.edit(&r)
			if _, err := b.client.CreateCheckoutSession(context.Background(), r); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("got %v", err)
			}
		})
	}
	if b.hits.Load() != 0 {
		t.Errorf("%d requests sent for invalid input", b.hits.Load())
	}
}

func TestExpireSession(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	open, err := b.client.CreateCheckoutSession(ctx, checkout("res-e1", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Open", func(t *testing.T) {
		if err := b.client.ExpireSession(ctx, open.ID, "expire:res-e1"); err != nil {
			t.Fatal(err)
		}
		if s, _ := b.fake.Session(open.ID); s.Status != "expired" {
			t.Errorf("status %q", s.Status)
		}
	})
	t.Run("AlreadyExpired", func(t *testing.T) {
		if err := b.client.ExpireSession(ctx, open.ID, "expire:res-e1:again"); err != nil {
			t.Errorf("got %v", err)
		}
		if err := b.client.ExpireSession(ctx, open.ID, ""); err != nil {
			t.Errorf("without key: %v", err)
		}
	})
	t.Run("Completed", func(t *testing.T) {
		s, err := b.client.CreateCheckoutSession(ctx, checkout("res-e2", time.Time{}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.fake.Pay(s.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.client.ExpireSession(ctx, s.ID, "expire:res-e2"); !errors.Is(err, cloud.ErrSessionCompleted) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		err := b.client.ExpireSession(ctx, "cs_test_nope", "")
		var se *stripe.Error
		if !errors.As(err, &se) || se.HTTPStatusCode != 404 || errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v", err)
		}
	})
}

func TestRefund(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	s, err := b.client.CreateCheckoutSession(ctx, checkout("res-r", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := b.fake.Pay(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := b.client.Refund(ctx, pi, "refund:evt_1")
	if err != nil || !strings.HasPrefix(id, "re_") {
		t.Fatalf("refund: %q %v", id, err)
	}
	again, err := b.client.Refund(ctx, pi, "refund:evt_1")
	if err != nil || again != id {
		t.Errorf("same key: %q %v, want %q", again, err, id)
	}
	other, err := b.client.Refund(ctx, pi, "refund:evt_2")
	if err != nil || other != id {
		t.Errorf("already refunded under another key: %q %v, want %q", other, err, id)
	}
	refunds := b.fake.Refunds()
	if len(refunds) != 1 || refunds[0].Amount != 1250 || refunds[0].PaymentIntentID != pi {
		t.Errorf("refunds at the fake %+v", refunds)
	}
	if _, err := b.client.Refund(ctx, "pi_unknown", "refund:x"); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("unknown payment intent: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		outage   stripefake.Outage
		attempts int64
	}{
		{"ServerError", stripefake.OutageServerError, 1 + retryMax},
		{"RateLimited", stripefake.OutageRateLimit, 1 + retryMax},
		{"ConnectionDropped", stripefake.OutageDropConnection, 1 + retryMax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.fake.SetOutage(tt.outage)
			start := time.Now()
			_, err := b.client.CreateCheckoutSession(ctx, checkout("res-u", time.Time{}))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			// One retry layer only: stripe-go's retries would make this 12.
			if n := b.hits.Load(); n != tt.attempts {
				t.Errorf("%d attempts, want %d", n, tt.attempts)
			}
			if err := b.client.ExpireSession(ctx, "cs_test_x", ""); !errors.Is(err, ErrUnavailable) {
				t.Errorf("expire: %v", err)
			}
			if _, err := b.client.Refund(ctx, "pi_x", "k"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("refund: %v", err)
			}
		})
	}
	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		c := newClient(t, dead.URL, 5*time.Second)
		start := time.Now()
		_, err := c.CreateCheckoutSession(ctx, checkout("res-u", time.Time{}))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("Hung", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(hung.Close)
		t.Cleanup(func() { close(release) })
		c := newClient(t, hung.URL, 400*time.Millisecond)
		start := time.Now()
		_, err := c.CreateCheckoutSession(ctx, checkout("res-u", time.Time{}))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("took %v with a 400ms timeout", d)
		}
	})
}

func TestClampExpiry(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		want time.Time
		out  time.Time
	}{
		{"Short", now.Add(time.Minute), now.Add(33 * time.Minute)},
		{"Hold", now.Add(10 * time.Minute), now.Add(42 * time.Minute)},
		{"AtMinimum", now.Add(32 * time.Minute), now.Add(32 * time.Minute)},
		{"Inside", now.Add(5 * time.Hour), now.Add(5 * time.Hour)},
		{"JustPast", now.Add(-30 * time.Second), now.Add(31*time.Minute + 30*time.Second)},
		{"LongPast", now.Add(-10 * time.Minute), now.Add(35 * time.Minute)},
		{"Long", now.Add(48 * time.Hour), now.Add(24*time.Hour - 5*time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clampExpiry(tt.want, now); !got.Equal(tt.out) {
				t.Errorf("clampExpiry(%v) = %v, want %v", tt.want, got, tt.out)
			}
		})
	}
	// Every call within a hold's ten minutes, and a minute past, sends the
	// same instant, at least 30 minutes after the call.
	want := now.Add(10 * time.Minute)
	first := clampExpiry(want, now)
	for after := time.Duration(0); after <= 11*time.Minute; after += 7 * time.Second {
		call := now.Add(after)
		got := clampExpiry(want, call)
		if !got.Equal(first) {
			t.Errorf("a call %v later: %v; want %v", after, got, first)
		}
		if got.Sub(call) < minSessionLifetime {
			t.Errorf("a call %v later: %v, less than 30 minutes on", after, got)
		}
	}
}

// TestCheckoutRetryAcrossTheClock: a hold's Checkout Session asked again
// under its idempotency key (a request resumed after a crash or a
// failover) gets the same session back however much later it comes within
// the hold, which takes the same parameters, expires_at among them.
// Rounded from the time of the call, a retry on the far side of a rounding
// step was refused as an idempotency_error: a 502 to a driver whose hold
// was made. A hold longer than Stripe's 30 minutes has its end sent as it
// is, and a retry in its last 32 minutes, which would move it, is asked
// again with the end as it is.
func TestCheckoutRetryAcrossTheClock(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	// Past the next 5-minute step of the old rounding (now + 32 min).
	step := now.Add(32 * time.Minute).Truncate(5 * time.Minute).Add(5 * time.Minute).Sub(now.Add(32 * time.Minute))
	tests := []struct {
		name    string
		hold    time.Duration
		retries []time.Duration // after the first call
		asIs    bool            // the session ends at the hold's end, not after it
	}{
		{"ShortHold", 10 * time.Minute, []time.Duration{time.Second, step + time.Second, 9 * time.Minute}, false},
		{"LongHold", 45 * time.Minute, []time.Duration{20 * time.Minute, 44 * time.Minute}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			holdEnd := now.Add(tt.hold)
			call := func(after time.Duration) cloud.Session {
				t.Helper()
				at := now.Add(after)
				b.client.now = func() time.Time { return at }
				s, err := b.client.CreateCheckoutSession(context.Background(), checkout("res-retry", holdEnd))
				if err != nil {
					t.Fatalf("a call %v after the first: %v", after, err)
				}
				return s
			}
			first := call(0)
			if tt.asIs && !first.ExpiresAt.Equal(holdEnd) {
				t.Errorf("session ends %v; want the hold's end %v", first.ExpiresAt, holdEnd)
			}
			if !tt.asIs && !first.ExpiresAt.After(holdEnd) {
				t.Errorf("session ends %v, before the hold's end %v", first.ExpiresAt, holdEnd)
			}
			for _, after := range tt.retries {
				if s := call(after); s.ID != first.ID || !s.ExpiresAt.Equal(first.ExpiresAt) {
					t.Errorf("a call %v after the first: session %s until %v; want %s until %v", after, s.ID, s.ExpiresAt, first.ID, first.ExpiresAt)
				}
			}
			// A different request under the key is still refused.
			other := checkout("res-retry", holdEnd)
			other.Amount++
			if _, err := b.client.CreateCheckoutSession(context.Background(), other); cloud.ErrorCode(err) != cloud.EPaymentProvider {
				t.Errorf("another amount under the same key: %v; want refused", err)
			}
		})
	}
}
