package stripepay

// The Checkout Session every hold makes: its form written out, its post
// and answer, and the expiry a retry under the same key must repeat.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/parkgate/parkgate/cloud"
	"github.com/stripe/stripe-go/v76"
)

const (
	// Stripe measures expires_at bounds from its own clock at creation;
	// expiryMargin absorbs request latency and clock skew. See clampExpiry.
	minSessionLifetime = 30 * time.Minute
	maxSessionLifetime = 24 * time.Hour
	expiryMargin       = 2 * time.Minute
	expiryGrain        = 5 * time.Minute
)

// CreateCheckoutSession opens a payment-mode Checkout Session with one line
// item, client_reference_id set to the reservation, and reservation_id and
// lot_id in the metadata of both the session and its payment intent.
// Stripe accepts an expiry of 30 minutes to 24 hours from creation; r's
// ExpiresAt sooner than that is moved past it (clampExpiry), so a hold
// shorter than 30 minutes must be ended with ExpireSession.
// r.IdempotencyKey is required.
func (c *Client) CreateCheckoutSession(ctx context.Context, r cloud.Checkout) (cloud.Session, error) {
	const op = "create checkout session"
	currency := strings.ToLower(r.Currency)
	switch {
	case r.ReservationID == "":
		return cloud.Session{}, invalid(op, "reservation id required")
	case r.Amount <= 0:
		return cloud.Session{}, invalid(op, "amount must be positive, got %d", r.Amount)
	case len(currency) != 3:
		return cloud.Session{}, invalid(op, "invalid currency %q", r.Currency)
	}
	if err := checkKey(op, r.IdempotencyKey); err != nil {
		return cloud.Session{}, err
	}
	name := r.Description
	if name == "" {
		name = "Parking reservation"
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// The form stripe-go's CheckoutSessionParams encode to, written out:
	// its encoder walks the params struct by reflection, and the session
	// it decodes the answer into has a hundred fields, where the hold
	// reads three; both were a third of the client's CPU per hold. The
	// request is still stripe-go's (post: headers, key, idempotency,
	// errors), and TestCheckoutFormAsStripeGo holds the form to what
	// stripe-go would send, so a retry under the same key after an upgrade
	// sends the same parameters.
	var f formBody
	f.add("mode", string(stripe.CheckoutSessionModePayment))
	f.add("success_url", withReservation(c.cfg.SuccessURL, r.ReservationID))
	if c.cfg.CancelURL != "" {
		f.add("cancel_url", withReservation(c.cfg.CancelURL, r.ReservationID))
	}
	f.add("client_reference_id", r.ReservationID)
	f.add("line_items[0][quantity]", "1")
	f.add("line_items[0][price_data][currency]", currency)
	f.add("line_items[0][price_data][unit_amount]", strconv.FormatInt(r.Amount, 10))
	f.add("line_items[0][price_data][product_data][name]", name)
	// The payment intent outlives the session in Stripe's dashboard and
	// on refunds; give it the same back-references.
	for _, prefix := range []string{"metadata", "payment_intent_data[metadata]"} {
		f.add(prefix+"[reservation_id]", r.ReservationID)
		if r.LotID != "" {
			f.add(prefix+"[lot_id]", r.LotID)
		}
	}
	form := slices.Clip(f.b) // without expires_at; adding to it copies
	var expiry time.Time
	if !r.ExpiresAt.IsZero() {
		expiry = clampExpiry(r.ExpiresAt, c.now())
		f.add("expires_at", strconv.FormatInt(expiry.Unix(), 10))
	}
	p := &stripe.Params{Context: ctx, IdempotencyKey: stripe.String(r.IdempotencyKey)}
	var s createdSession
	start := time.Now()
	err := c.post("/v1/checkout/sessions", f.b, p, &s)
	if !expiry.IsZero() && !expiry.Equal(r.ExpiresAt) && isIdempotencyError(err) {
		// An earlier call under this key sent the hold's end as it was,
		// while it was still 32 minutes off (clampExpiry): the same
		// parameters again, and Stripe replays that call's session.
		again := formBody{b: form}
		again.add("expires_at", strconv.FormatInt(r.ExpiresAt.Unix(), 10))
		if c.post("/v1/checkout/sessions", again.b, p, &s) == nil {
			err = nil
		}
	}
	if err != nil {
		err = classify(op, err)
	}
	observe(opCreateSession, start, err)
	if err != nil {
		return cloud.Session{}, err
	}
	return cloud.Session{ID: s.ID, URL: s.URL, ExpiresAt: time.Unix(s.ExpiresAt, 0)}, nil
}

// isIdempotencyError says whether Stripe refused a request for reusing an
// idempotency key with other parameters.
func isIdempotencyError(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.Type == stripe.ErrorTypeIdempotency
}

// post is stripe-go's CallRaw for the one call every hold makes, without
// what it costs per call in a process doing a thousand a second: stripe-go
// builds the request (its headers, key, idempotency key) and turns an
// error answer into a *stripe.Error, but the body goes out with its
// length (CallRaw's has none, so net/http sends it chunked, and the
// chunk's terminator is a second write to the socket and a second read
// on Stripe's side), and the answer is decoded once (CallRaw's response
// wrapper has encoding/json validate it twice and decode it, and copies it
// for a debug log that is off). Retries stay retryablehttp's: post calls
// its client itself, not through the http.Client that wraps it for
// stripe-go (StandardClient), whose second Client.Do and copy of the body
// into retryablehttp's request were 35 of the call's 334 allocations
// (BenchmarkCreateCheckoutSession). The caller's context bounds the whole
// call (CreateCheckoutSession's timeout, the wrapper's), the client each
// attempt.
func (c *Client) post(path string, body []byte, p *stripe.Params, v any) error {
	req, err := c.be.NewRequest(http.MethodPost, path, c.cfg.SecretKey, "application/x-www-form-urlencoded", p)
	if err != nil {
		return err
	}
	rreq, err := retryablehttp.FromRequest(req) // no body yet: nothing to copy
	if err != nil {
		return err
	}
	if err := rreq.SetBody(body); err != nil {
		return err
	}
	res, err := c.rc.Do(rreq)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	answer, err := readAnswer(res)
	if err != nil {
		return fmt.Errorf("reading stripe's answer: %w", err)
	}
	if res.StatusCode >= 400 {
		return c.be.ResponseToError(res, answer)
	}
	if err := json.Unmarshal(answer, v); err != nil {
		return fmt.Errorf("stripe's answer (status %d) is not the JSON expected: %w", res.StatusCode, err)
	}
	return nil
}

// maxAnswer bounds what post reads of an answer; a Checkout Session is a
// few kilobytes.
const maxAnswer = 1 << 20

// readAnswer reads an answer's body: in one read of its length when it
// has one (Stripe's answers do), where io.ReadAll would grow its buffer
// from 512 bytes through three copies.
func readAnswer(res *http.Response) ([]byte, error) {
	if n := res.ContentLength; n > 0 && n <= maxAnswer {
		answer := make([]byte, n)
		_, err := io.ReadFull(res.Body, answer)
		return answer, err
	}
	return io.ReadAll(io.LimitReader(res.Body, maxAnswer))
}

// formBody is a request body in Stripe's form encoding, written as
// stripe-go's form.Values.Encode writes it: names and values
// query-escaped, except the brackets of nested names, which go as they
// are. Encode escaped every name, twice searched it for escaped brackets
// and copied the whole body out of its buffer: a fifth of post's CPU
// (BenchmarkCreateCheckoutSession), for names that are constants here.
// FuzzFormBody holds the bytes to Encode's.
type formBody struct{ b []byte }

func (f *formBody) add(name, value string) {
	if f.b == nil {
		f.b = make([]byte, 0, 640) // a Checkout Session's form is about 500 bytes
	} else {
		f.b = append(f.b, '&')
	}
	f.b = appendEscapedName(f.b, name)
	f.b = append(f.b, '=')
	f.b = append(f.b, url.QueryEscape(value)...)
}

// appendEscapedName appends name query-escaped with its brackets kept.
func appendEscapedName(b []byte, name string) []byte {
	for name != "" {
		i := strings.IndexAny(name, "[]")
		if i < 0 {
			return append(b, url.QueryEscape(name)...)
		}
		b = append(b, url.QueryEscape(name[:i])...)
		b = append(b, name[i])
		name = name[i+1:]
	}
	return b
}

// createdSession is what a hold reads of the Checkout Session Stripe
// answers with.
type createdSession struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	ExpiresAt int64  `json:"expires_at"`
}

// clampExpiry is the expires_at sent for a session meant to end at want
// (a hold's end), in a call made at now. Stripe takes 30 minutes to 24
// hours from the session's creation by its own clock, and a retry under the
// same idempotency key must send the same parameters however much later it
// comes (a request resumed after a crash or a failover), or Stripe refuses
// it as an idempotency_error. A want inside Stripe's window is sent as it
// is. One too soon (a hold's ten minutes) is moved to want plus Stripe's
// minimum and expiryMargin: counted from want, not from now, it is the same
// for every call made up to a minute past want
// (TestCheckoutRetryAcrossTheClock). Counted from now and rounded to five
// minutes, as before, a retry on the far side of a rounding step was
// refused: a 502 to a driver whose hold was made. The caller expires the
// session at want; a payment in the gap is a late one, refunded. A want
// past by more than that minute, or beyond Stripe's 24 hours, is clamped
// from now, rounded to expiryGrain so that calls close together agree.
//
// A want inside the window at the first call and too soon at a retry (a
// hold longer than 32 minutes, PARKGATE_HOLD_TTL, retried in its last 32)
// still changes; CreateCheckoutSession, refused, asks again with want as
// it is, as the first call did.
func clampExpiry(want, now time.Time) time.Time {
	if latest := now.Add(maxSessionLifetime - expiryMargin).Truncate(expiryGrain); want.After(latest) {
		return latest
	}
	if !want.Before(now.Add(minSessionLifetime + expiryMargin)) {
		return want
	}
	if at := want.Add(minSessionLifetime + expiryMargin); !at.Before(now.Add(minSessionLifetime + expiryMargin/2)) {
		return at
	}
	return now.Add(minSessionLifetime + expiryMargin).Truncate(expiryGrain).Add(expiryGrain)
}

// ReservationPlaceholder in a return URL is replaced by the reservation's
// id, as Stripe replaces {CHECKOUT_SESSION_ID}: the page the driver comes
// back to can then show that reservation.
const ReservationPlaceholder = "{RESERVATION_ID}"

func withReservation(u, reservationID string) string {
	return strings.ReplaceAll(u, ReservationPlaceholder, url.PathEscape(reservationID))
}
