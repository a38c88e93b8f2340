package stripepay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/parkgate/parkgate/cloud"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultAPIBase is Stripe's API; Config.APIBase overrides it.
const DefaultAPIBase = "https://api.stripe.com"

const (
	defaultTimeout = 20 * time.Second
	retryMax       = 3
	retryWaitMin   = 50 * time.Millisecond
	retryWaitMax   = 500 * time.Millisecond

	// Stripe measures expires_at bounds from its own clock at creation;
	// expiryMargin absorbs request latency and clock skew. See clampExpiry.
	minSessionLifetime = 30 * time.Minute
	maxSessionLifetime = 24 * time.Hour
	expiryMargin       = 2 * time.Minute
	expiryGrain        = 5 * time.Minute
)

var (
	// ErrUnavailable wraps failures to reach Stripe: network errors,
	// timeouts, 5xx and 429 answers after retries. The operation may be
	// retried later with the same idempotency key.
	ErrUnavailable = errors.New("stripepay: stripe unavailable")
)

// *slog.Logger already has retryablehttp's leveled-logger methods.
var _ retryablehttp.LeveledLogger = (*slog.Logger)(nil)

var _ cloud.Payments = (*Client)(nil)

// Config configures a Client. SecretKey and SuccessURL are required.
type Config struct {
	SecretKey string
	// APIBase is the scheme and host of Stripe's API, without /v1; the
	// service fills it from STRIPE_API_BASE. Default DefaultAPIBase.
	APIBase string
	// SuccessURL and CancelURL are where Checkout sends the driver back;
	// Stripe replaces {CHECKOUT_SESSION_ID} in them, and the client
	// {RESERVATION_ID} (ReservationPlaceholder) with the hold's id.
	SuccessURL string
	CancelURL  string
	// Timeout bounds one call including its retries; each attempt gets half
	// of it, so one hung connection still leaves time for a retry.
	// Default 20s.
	Timeout time.Duration
	// Logger receives retry logs from the HTTP layer. Nil logs nothing.
	Logger *slog.Logger
}

// Client calls Stripe. It is safe for concurrent use.
type Client struct {
	api     *client.API
	be      *stripe.BackendImplementation
	rc      *retryablehttp.Client // post's; the rest of the calls go through stripe-go and be
	cfg     Config
	timeout time.Duration
	now     func() time.Time
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("stripepay: secret key required")
	}
	if cfg.SuccessURL == "" {
		return nil, errors.New("stripepay: success url required")
	}
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	u, err := url.Parse(cfg.APIBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("stripepay: invalid api base %q", cfg.APIBase)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}

	rc := retryablehttp.NewClient()
	rc.HTTPClient.Timeout = cfg.Timeout / 2
	rc.HTTPClient.Transport = transport()
	rc.RetryMax = retryMax
	rc.RetryWaitMin = retryWaitMin
	rc.RetryWaitMax = retryWaitMax
	// POSTs are retried too, after network errors where Stripe may have
	// acted: safe because every POST carries an idempotency key.
	rc.CheckRetry = checkRetry
	rc.Backoff = backoff
	// Hand the last answer to stripe-go instead of retryablehttp's generic
	// "giving up" error, so a final 5xx or 429 still carries Stripe's
	// error object and request id.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.Logger = nil // a nil *slog.Logger in the interface would panic
	if cfg.Logger != nil {
		rc.Logger = cfg.Logger.With("component", "stripepay")
	}
	hc := rc.StandardClient()
	hc.Timeout = cfg.Timeout

	be := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:        stripe.String(cfg.APIBase),
		HTTPClient: hc,
		// retryablehttp retries; stripe-go retrying too would multiply
		// attempts (4 × 3) and sleep outside our backoff.
		MaxNetworkRetries: stripe.Int64(0),
		// stripe-go logs every 4xx at error level, including the ones this
		// package treats as success (expiring an expired session, refunding
		// a refunded payment); the errors we return carry what matters.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		// Telemetry reports each call's latency to Stripe in a header of
		// the next: a JSON encoding, a queue and a lock on every call,
		// for Stripe's dashboards, not ours.
		EnableTelemetry: stripe.Bool(false),
	})
	return &Client{
		api:     client.New(cfg.SecretKey, &stripe.Backends{API: be, Connect: be, Uploads: be}),
		be:      be.(*stripe.BackendImplementation),
		rc:      rc,
		cfg:     cfg,
		timeout: cfg.Timeout,
		now:     time.Now,
	}, nil
}

// checkRetry follows Stripe's Stripe-Should-Retry header when present (it
// marks, for example, a 409 on an idempotency key still in use as retryable)
// and otherwise retries network errors, 429 and 5xx.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err == nil && resp != nil {
		switch resp.Header.Get("Stripe-Should-Retry") {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// backoff is retryablehttp's exponential backoff, capped even when Stripe
// sends a long Retry-After: the caller's deadline matters more.
func backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
}

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
	form := f.b
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
		again := append(form[:len(form):len(form)], "&expires_at="...)
		again = strconv.AppendInt(again, r.ExpiresAt.Unix(), 10)
		if c.post("/v1/checkout/sessions", again, p, &s) == nil {
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

// ExpireSession expires an open session so it can no longer be paid. A
// session that already expired is success; one that completed returns
// cloud.ErrSessionCompleted. idempotencyKey may be empty: expiring is idempotent in
// effect, and the outcome is read back from the session either way.
func (c *Client) ExpireSession(ctx context.Context, sessionID, idempotencyKey string) (err error) {
	const op = "expire checkout session"
	if sessionID == "" {
		return invalid(op, "session id required")
	}
	if idempotencyKey != "" {
		if err := checkKey(op, idempotencyKey); err != nil {
			return err
		}
	}
	defer func(start time.Time) { observe(opExpireSession, start, err) }(time.Now())
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := &stripe.CheckoutSessionExpireParams{}
	p.Context = ctx
	if idempotencyKey != "" {
		p.SetIdempotencyKey(idempotencyKey)
	}
	_, err = c.api.CheckoutSessions.Expire(sessionID, p)
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusBadRequest || se.Type != stripe.ErrorTypeInvalidRequest {
		return classify(op, err)
	}
	// Stripe refuses a session that is not open with a sentence and no
	// error code; read the session's status rather than parse the prose.
	gp := &stripe.CheckoutSessionParams{}
	gp.Context = ctx
	s, gerr := c.api.CheckoutSessions.Get(sessionID, gp)
	if gerr != nil {
		return classify(op, gerr)
	}
	switch s.Status {
	case stripe.CheckoutSessionStatusExpired:
		return nil
	case stripe.CheckoutSessionStatusComplete:
		return fmt.Errorf("stripepay: %w: %s", cloud.ErrSessionCompleted, sessionID)
	}
	return classify(op, err)
}

// Refund refunds the whole unrefunded amount of a payment intent and returns
// the refund's id. A payment that is already fully refunded is success: the
// id returned is then that of its latest refund, or empty if that could not
// be looked up.
func (c *Client) Refund(ctx context.Context, paymentIntentID, idempotencyKey string) (_ string, err error) {
	const op = "refund"
	if paymentIntentID == "" {
		return "", invalid(op, "payment intent id required")
	}
	if err := checkKey(op, idempotencyKey); err != nil {
		return "", err
	}
	defer func(start time.Time) { observe(opRefund, start, err) }(time.Now())
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := &stripe.RefundParams{PaymentIntent: stripe.String(paymentIntentID)}
	p.Context = ctx
	p.SetIdempotencyKey(idempotencyKey)
	r, err := c.api.Refunds.New(p)
	if err == nil {
		return r.ID, nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.Code != stripe.ErrorCodeChargeAlreadyRefunded {
		return "", classify(op, err)
	}
	// Refunded before, under another key or from the dashboard: the money
	// is back with the driver, which is all the caller asked for.
	lp := &stripe.RefundListParams{PaymentIntent: stripe.String(paymentIntentID)}
	lp.Context = ctx
	lp.Limit = stripe.Int64(1)
	lp.Single = true
	it := c.api.Refunds.List(lp)
	if it.Next() {
		return it.Refund().ID, nil
	}
	return "", nil
}

// RefundAmount refunds amount of a payment intent and returns the refund's
// id. Stripe keeps the key's first answer for a day: a retry with the same
// key gets the same refund, never a second.
func (c *Client) RefundAmount(ctx context.Context, paymentIntentID string, amount int64, idempotencyKey string) (_ string, err error) {
	const op = "partial refund"
	if paymentIntentID == "" {
		return "", invalid(op, "payment intent id required")
	}
	if amount < 1 {
		return "", invalid(op, "amount %d must be positive", amount)
	}
	if err := checkKey(op, idempotencyKey); err != nil {
		return "", err
	}
	defer func(start time.Time) { observe(opPartialRefund, start, err) }(time.Now())
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := &stripe.RefundParams{PaymentIntent: stripe.String(paymentIntentID), Amount: stripe.Int64(amount)}
	p.Context = ctx
	p.SetIdempotencyKey(idempotencyKey)
	r, err := c.api.Refunds.New(p)
	if err != nil {
		return "", classify(op, err)
	}
	return r.ID, nil
}

// invalid is a request this client will not send, for what the caller
// passed: an invalid_request of the caller's own, never sent to Stripe.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("stripepay: %s: %w", op, cloud.Errorf(cloud.EInvalid, format, args...))
}

func checkKey(op, key string) error {
	if key == "" {
		return invalid(op, "idempotency key required")
	}
	if len(key) > 255 {
		return invalid(op, "idempotency key longer than 255 bytes")
	}
	return nil
}

// ReservationPlaceholder in a return URL is replaced by the reservation's
// id, as Stripe replaces {CHECKOUT_SESSION_ID}: the page the driver comes
// back to can then show that reservation.
const ReservationPlaceholder = "{RESERVATION_ID}"

func withReservation(u, reservationID string) string {
	return strings.ReplaceAll(u, ReservationPlaceholder, url.PathEscape(reservationID))
}

// classify wraps err with op, marking as ErrUnavailable what a later retry
// may fix: anything that is not an answer from Stripe, and the answers that
// say "not now" (5xx, 429, an idempotency key still in use).
func classify(op string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		if se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusTooManyRequests ||
			se.Code == stripe.ErrorCodeIdempotencyKeyInUse {
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
		}
		// Stripe refused the request: its message is for the caller.
		refused := &cloud.Error{Code: cloud.EPaymentProvider, Message: "the payment provider refused the request: " + se.Msg}
		if se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden {
			// The key (revoked, another account's) or its rights (a
			// restricted key), not this request: the workers must not
			// hold every reservation back for it (cloud.ErrProviderCredentials).
			return fmt.Errorf("stripepay: %s: %w: %w: %w", op, refused, cloud.ErrProviderCredentials, err)
		}
		return fmt.Errorf("stripepay: %s: %w: %w", op, refused, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// transport keeps connections to Stripe open between calls: every hold
// makes a Checkout Session, and retryablehttp's pooled default keeps only
// GOMAXPROCS+1 idle connections per host, so with more holds in flight
// than that most calls paid a fresh TCP (and TLS) handshake and left a
// socket in TIME_WAIT. HTTP/2, where the base is https (Stripe's is),
// carries them all on one connection.
func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = true
	return t
}
