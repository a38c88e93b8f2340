package stripepay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/form"

	"github.com/parkgate/parkgate/cloud"
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
	exp := time.Now().Add(2 * time.Hour)
	for r := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.client.CreateCheckoutSession(context.Background(), checkout(fmt.Sprintf("res-%d-%d", r, c), exp))
				if err != nil {
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
