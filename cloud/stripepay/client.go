package stripepay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
