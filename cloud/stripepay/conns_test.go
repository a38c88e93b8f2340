package stripepay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/form"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// connCounter sits in front of the stand-in and counts the connections its
// requests came on, by their client address.
type connCounter struct {
	mu    sync.Mutex
	addrs map[string]bool
}

func (c *connCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		if c.addrs == nil {
			c.addrs = map[string]bool{}
		}
		c.addrs[r.RemoteAddr] = true
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *connCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.addrs)
}

// handOffWaves makes Checkout Sessions as the API's holds hand them off
// when busy: rounds waves of callers at once, each wave after the last.
func handOffWaves(t *testing.T, c *Client, callers, rounds int) {
	t.Helper()
	exp := time.Now().Add(2 * time.Hour)
	for r := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.CreateCheckoutSession(context.Background(), checkout(fmt.Sprintf("res-%d-%d", r, i), exp)); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// TestCheckoutReusesConnections: sixteen holds handed off at once, again
// and again, as the API's clients send them, ride on the connections the
// first wave opened. With the pooled default of retryablehttp (two idle
// connections per host, then GOMAXPROCS+1) most calls opened a connection
// of their own and left a socket in TIME_WAIT.
func TestCheckoutReusesConnections(t *testing.T) {
	t.Parallel()
	conns := &connCounter{}
	b := setup(t, conns.wrap)
	const callers, rounds = 16, 20
	handOffWaves(t, b.client, callers, rounds)
	// About one connection per caller (a connection is back in the pool
	// only once its reader saw the end of the answer, so a call may find
	// none idle and dial): twice that is the bound. A pool that kept two
	// idle opened about 14 a round, near 280 in all.
	if n := conns.n(); n > 2*callers {
		t.Errorf("%d connections for %d calls by %d callers at once; want at most %d", n, callers*rounds, callers, 2*callers)
	}
}

// BenchmarkCreateCheckoutSession is one hold's hand-off to the Stripe
// stand-in, from 16 goroutines: the client's and the stand-in's CPU
// together (both run here), allocations, and the connections opened.
func BenchmarkCreateCheckoutSession(b *testing.B) {
	conns := &connCounter{}
	bd := setup(b, conns.wrap)
	exp := time.Now().Add(2 * time.Hour)
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := bd.client.CreateCheckoutSession(context.Background(), checkout(fmt.Sprint("res-", seq.Add(1)), exp)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(conns.n()), "conns")
}

// TestCheckoutFormAsStripeGo: the form CreateCheckoutSession writes out is
// the one stripe-go's own params would encode to, parameter for parameter,
// with and without the optional ones, so Stripe (and a retry under the same
// idempotency key across an upgrade) sees the same request.
func TestCheckoutFormAsStripeGo(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []url.Values
	b := setup(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			v, err := url.ParseQuery(string(body))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
		})
	})
	now := time.Now().Truncate(time.Second) // the stand-in checks expires_at against its own clock
	b.client.now = func() time.Time { return now }
	noCancel := newClient(t, b.server.URL, 5*time.Second)
	noCancel.cfg.CancelURL = ""
	noCancel.now = b.client.now

	cases := []struct {
		name   string
		client *Client
		in     cloud.Checkout
	}{
		{"Full", b.client, checkout("res-1", now.Add(2*time.Hour))},
		{"NoLotNoExpiryNoCancel", noCancel, cloud.Checkout{ReservationID: "res 2/ü", Amount: 5, Currency: "usd", IdempotencyKey: "k2"}},
		{"ClampedExpiry", b.client, checkout("res-3", now.Add(time.Minute))},
	}
	for i, c := range cases {
		if _, err := c.client.CreateCheckoutSession(context.Background(), c.in); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		name := c.in.Description
		if name == "" {
			name = "Parking reservation"
		}
		md := map[string]string{"reservation_id": c.in.ReservationID}
		if c.in.LotID != "" {
			md["lot_id"] = c.in.LotID
		}
		p := &stripe.CheckoutSessionParams{
			Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
			SuccessURL:        stripe.String(withReservation(c.client.cfg.SuccessURL, c.in.ReservationID)),
			ClientReferenceID: stripe.String(c.in.ReservationID),
			LineItems: []*stripe.CheckoutSessionLineItemParams{{
				Quantity: stripe.Int64(1),
				PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
					Currency:    stripe.String(strings.ToLower(c.in.Currency)),
					UnitAmount:  stripe.Int64(c.in.Amount),
					ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String(name)},
				},
			}},
			Metadata:          md,
			PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: maps.Clone(md)},
		}
		if c.client.cfg.CancelURL != "" {
			p.CancelURL = stripe.String(withReservation(c.client.cfg.CancelURL, c.in.ReservationID))
		}
		if !c.in.ExpiresAt.IsZero() {
			p.ExpiresAt = stripe.Int64(clampExpiry(c.in.ExpiresAt, now).Unix())
		}
		want := &form.Values{}
		form.AppendTo(want, p)
		mu.Lock()
		sent := got[i]
		mu.Unlock()
		if !reflect.DeepEqual(sent, want.ToValues()) {
			t.Errorf("%s: sent\n%v\nstripe-go would send\n%v", c.name, sent, want.ToValues())
		}
	}
}

// TestCheckoutRequestAsStripeGo holds the request post sends to the one
// stripe-go's own CheckoutSessions.New sends, header for header, except
// that post's body has a length: stripe-go's goes out chunked.
func TestCheckoutRequestAsStripeGo(t *testing.T) {
	t.Parallel()
	type seen struct {
		header  http.Header
		length  int64
		chunked bool
		body    int
	}
	var mu sync.Mutex
	var got []seen
	b := setup(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, seen{r.Header.Clone(), r.ContentLength, slices.Contains(r.TransferEncoding, "chunked"), len(body)})
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
		})
	})
	if _, err := b.client.CreateCheckoutSession(context.Background(), checkout("res-1", time.Time{})); err != nil {
		t.Fatal(err)
	}
	p := &stripe.CheckoutSessionParams{
		Mode:       stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL: stripe.String("https://parkgate.test/paid"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency: stripe.String("eur"), UnitAmount: stripe.Int64(100),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("x")},
			},
		}},
	}
	p.SetIdempotencyKey("stripe-go")
	if _, err := b.client.api.CheckoutSessions.New(p); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	ours, theirs := got[0], got[1]
	if ours.chunked || ours.length != int64(ours.body) || ours.body == 0 {
		t.Errorf("post sent %d bytes, Content-Length %d, chunked %v", ours.body, ours.length, ours.chunked)
	}
	if !theirs.chunked {
		t.Logf("stripe-go's own request is no longer chunked (Content-Length %d): post could go back to CallRaw", theirs.length)
	}
	for _, h := range []string{"Authorization", "Content-Type", "Stripe-Version", "User-Agent", "X-Stripe-Client-User-Agent"} {
		if ours.header.Get(h) != theirs.header.Get(h) || ours.header.Get(h) == "" {
			t.Errorf("%s: post sent %q, stripe-go %q", h, ours.header.Get(h), theirs.header.Get(h))
		}
	}
	if k := ours.header.Get("Idempotency-Key"); k != "hold:res-1" {
		t.Errorf("Idempotency-Key %q", k)
	}
}

// TestCheckoutAnswers: what post makes of Stripe's answers, refusals and
// answers that are not Stripe's.
func TestCheckoutAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		body        string
		unavailable bool
		refused     string // the cloud.Error's message, when refused
	}{
		{"Refused", 400, `{"error":{"type":"invalid_request_error","message":"Invalid currency: xyz","param":"currency"}}`, false, "Invalid currency: xyz"},
		{"KeyRevoked", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_live_****x"}}`, false, "Invalid API Key"},
		{"KeyRestricted", 403, `{"error":{"type":"invalid_request_error","message":"The provided key does not have the required permissions"}}`, false, "required permissions"},
		{"KeyInUse", 409, `{"error":{"type":"idempotency_error","code":"idempotency_key_in_use","message":"busy"}}`, true, ""},
		{"NotJSON", 200, `<html>proxy</html>`, true, ""},
		{"ErrorNotJSON", 502, `Bad Gateway`, true, ""},
		{"Answered", 200, `{"id":"cs_test_1","object":"checkout.session","url":"https://pay/cs_test_1","expires_at":1900000000,"metadata":{"a":"b"}}`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Stripe-Should-Retry", "false")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			s, err := newClient(t, srv.URL, 5*time.Second).CreateCheckoutSession(context.Background(), checkout("res-a", time.Time{}))
			if tt.status == 200 && !tt.unavailable {
				if err != nil || s.ID != "cs_test_1" || s.URL != "https://pay/cs_test_1" || s.ExpiresAt.Unix() != 1900000000 {
					t.Fatalf("session %+v, %v", s, err)
				}
				return
			}
			if err == nil || errors.Is(err, ErrUnavailable) != tt.unavailable {
				t.Fatalf("got %v, want unavailable %v", err, tt.unavailable)
			}
			var ce *cloud.Error
			if got := errors.As(err, &ce); got != (tt.refused != "") || (got && (ce.Code != cloud.EPaymentProvider || !strings.Contains(ce.Message, tt.refused))) {
				t.Errorf("cloud error %+v in %v", ce, err)
			}
			if key := tt.status == 401 || tt.status == 403; errors.Is(err, cloud.ErrProviderCredentials) != key {
				t.Errorf("credentials refused: %v in %v, want %v", !key, err, key)
			}
		})
	}
}

// TestCheckoutOverHTTP2: against an https base, as Stripe's is, the calls
// go over HTTP/2, all of them on one connection once it is open, however
// many holds hand off at once.
func TestCheckoutOverHTTP2(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(stripefake.Options{})
	conns := &connCounter{}
	var h1 atomic.Int64
	srv := httptest.NewUnstartedServer(conns.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h1.Add(1)
		}
		fake.ServeHTTP(w, r)
	})))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); fake.Close() })

	c := newClient(t, srv.URL, 5*time.Second)
	// Trust the test server's certificate, in the transport New built.
	tr := c.rc.HTTPClient.Transport.(*http.Transport)
	tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}

	if _, err := c.CreateCheckoutSession(context.Background(), checkout("res-first", time.Now().Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	const callers, rounds = 16, 5
	handOffWaves(t, c, callers, rounds)
	if n := h1.Load(); n != 0 {
		t.Errorf("%d calls over HTTP/1", n)
	}
	if n := conns.n(); n != 1 {
		t.Errorf("%d connections for %d calls, %d at a time; want the one the first call opened", n, 1+callers*rounds, callers)
	}
}
