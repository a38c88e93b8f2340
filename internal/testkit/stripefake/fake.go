package stripefake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// APIVersion is the version the fake stamps on events: the one stripe-go v76
// pins, so events decode with the same struct shapes production sees.
const APIVersion = "2023-10-16"

// Options configures a Fake. The zero value is usable: any test-mode secret key
// is accepted and no webhooks are sent until SetWebhook is called.
type Options struct {
	// APIKeys are the secret keys accepted. Empty accepts any key that starts
	// with sk_test_ or rk_test_, which is what most tests want.
	APIKeys []string
	// BaseURL is where the fake is reachable from a browser, used for the
	// session's url. Empty derives it from each request's Host header.
	BaseURL string

	// WebhookURL and WebhookSecret are the endpoint events are sent to and
	// the whsec_ secret they are signed with; see also SetWebhook.
	WebhookURL    string
	WebhookSecret string
	// RetryBase is the first retry delay of a failed delivery; it doubles per
	// attempt up to RetryCap. Defaults 1s and 1m; tests use a few ms.
	RetryBase time.Duration
	RetryCap  time.Duration
	// MaxAttempts bounds the deliveries of one event (Stripe keeps trying for
	// three days; a simulation cannot wait that long). Default 6.
	MaxAttempts int
	// WebhookClient sends events. Default: 10 s timeout, no redirects
	// followed, since Stripe counts a 3xx as a failed delivery.
	WebhookClient *http.Client

	// SweepInterval, when positive, expires open sessions past expires_at in
	// the background, as Stripe does, without waiting for someone to look at
	// them. Close stops it.
	SweepInterval time.Duration
	// Now is the fake's clock for created/expires_at checks, idempotency key
	// lifetime and signature timestamps. Default time.Now.
	Now func() time.Time
}

// Outage selects how the API misbehaves; see SetOutage.
type Outage int

const (
	// OutageNone serves requests normally.
	OutageNone Outage = iota
	// OutageServerError answers every API call with 500 api_error.
	OutageServerError
	// OutageRateLimit answers every API call with 429 rate_limit.
	OutageRateLimit
	// OutageDropConnection closes the connection without answering, which a
	// client sees as a network error.
	OutageDropConnection
)

// Fake is the Stripe stand-in. It is an http.Handler; serve it with
// httptest.NewServer or an http.Server. Its methods are safe for concurrent
// use. Call Close to stop background deliveries.
type Fake struct {
	opts Options
	now  func() time.Time
	mux  *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc
	sweep  sync.WaitGroup

	mu             sync.Mutex
	outage         Outage
	webhookURL     string
	webhookSecrets []string
	paused         bool
	held           []string // event ids created while paused, in order
	sessions       map[string]*Session
	sessionOrder   []string
	payments       map[string]*payment // by payment intent id
	charges        map[string]string   // charge id → payment intent id
	refunds        []*Refund
	events         map[string]*Event
	eventOrder     []string
	idem           map[idemScope]*idemEntry
	idemPruned     time.Time
	inflight       int
	idle           chan struct{}
	wg             sync.WaitGroup
}

// New returns a Fake configured by opts.
func New(opts Options) *Fake {
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryCap <= 0 {
		opts.RetryCap = time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 6
	}
	if opts.WebhookClient == nil {
		opts.WebhookClient = &http.Client{
			Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fake{
		opts:       opts,
		now:        now,
		ctx:        ctx,
		cancel:     cancel,
		webhookURL: opts.WebhookURL,
		sessions:   map[string]*Session{},
		payments:   map[string]*payment{},
		charges:    map[string]string{},
		events:     map[string]*Event{},
		idem:       map[idemScope]*idemEntry{},
	}
	if opts.WebhookSecret != "" {
		f.webhookSecrets = []string{opts.WebhookSecret}
	}
	f.routes()
	if opts.SweepInterval > 0 {
		f.sweep.Add(1)
		go f.sweepLoop(opts.SweepInterval)
	}
	return f
}

// Close stops the sweeper and abandons pending webhook retries, waiting for
// in-flight deliveries to return.
func (f *Fake) Close() {
	// Cancelling under the lock orders it before any later delivery start,
	// which checks the context under the same lock.
	f.mu.Lock()
	f.cancel()
	f.mu.Unlock()
	f.sweep.Wait()
	f.wg.Wait()
}

// SetOutage makes the API misbehave until set back to OutageNone. Webhook
// delivery and the test methods (Pay, Expire, ...) keep working, since an
// outage on the request path is what callers need to survive.
func (f *Fake) SetOutage(o Outage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = o
}

// SetDown is SetOutage(OutageServerError) or SetOutage(OutageNone).
func (f *Fake) SetDown(down bool) {
	if down {
		f.SetOutage(OutageServerError)
	} else {
		f.SetOutage(OutageNone)
	}
}

func (f *Fake) sweepLoop(every time.Duration) {
	defer f.sweep.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
			f.ExpireDue()
		}
	}
}

func (f *Fake) routes() {
	m := http.NewServeMux()
	m.Handle("POST /v1/checkout/sessions", f.api(f.createSession))
	m.Handle("GET /v1/checkout/sessions/{id}", f.api(f.getSession))
	m.Handle("POST /v1/checkout/sessions/{id}/expire", f.api(f.expireSession))
	m.Handle("POST /v1/refunds", f.api(f.createRefund))
	m.Handle("GET /v1/refunds", f.api(f.listRefunds))
	m.Handle("GET /v1/refunds/{id}", f.api(f.getRefund))
	m.Handle("GET /v1/events/{id}", f.api(f.getEvent))
	m.HandleFunc("GET /pay/{id}", f.payPage)
	m.HandleFunc("POST /pay/{id}", f.payForm)
	f.mux = m
}

// ServeHTTP serves Stripe's API under /v1/ and a minimal hosted payment page
// under /pay/{session id}.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := f.mux.Handler(r); pattern == "" {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			w.Header().Set("Request-Id", newID("req_"))
			writeError(w, &apiError{
				status: http.StatusNotFound,
				Type:   "invalid_request_error",
				Message: fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
					r.Method, r.URL.Path),
			})
			return
		}
		http.NotFound(w, r)
		return
	}
	f.mux.ServeHTTP(w, r)
}

// apiRequest is what an API handler sees once auth and parsing are done.
type apiRequest struct {
	r       *http.Request
	key     string
	params  form
	reqID   string
	idemKey string
}

type apiHandler func(*apiRequest) (any, error)

// api wraps a handler with what every Stripe endpoint does before and after:
// outage simulation, auth, form parsing, idempotency and the error envelope.
func (f *Fake) api(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := newID("req_")
		w.Header().Set("Request-Id", reqID)
		w.Header().Set("Stripe-Version", APIVersion)

		f.mu.Lock()
		outage := f.outage
		f.mu.Unlock()
		switch outage {
		case OutageServerError:
			w.Header().Set("Stripe-Should-Retry", "true")
			writeError(w, &apiError{status: http.StatusInternalServerError, Type: "api_error",
				Message: "An unknown error occurred (stripefake outage)."})
			return
		case OutageRateLimit:
			w.Header().Set("Stripe-Should-Retry", "true")
			writeError(w, &apiError{status: http.StatusTooManyRequests, Type: "invalid_request_error", Code: "rate_limit",
				Message: "Too many requests hit the API too quickly (stripefake outage)."})
			return
		case OutageDropConnection:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			writeError(w, &apiError{status: http.StatusInternalServerError, Type: "api_error",
				Message: "Connection dropped (stripefake outage)."})
			return
		}

		key, aerr := f.authenticate(r)
		if aerr != nil {
			writeError(w, aerr)
			return
		}

		raw, what := r.URL.RawQuery, "query"
		if r.Method == http.MethodPost {
			what = "body"
			body, err := readBody(w, r)
			if err != nil {
				writeError(w, invalid("", "", "Could not read the request body."))
				return
			}
			raw = string(body)
		}
		params, err := parseForm(raw)
		if err != nil {
			writeError(w, invalid("", "", "Invalid request %s: %v", what, err))
			return
		}
		req := &apiRequest{r: r, key: key, params: params, reqID: reqID}

		// Stripe honours idempotency keys on POST only.
		if r.Method != http.MethodPost || r.Header.Get("Idempotency-Key") == "" {
			status, body := respond(h(req))
			writeRaw(w, status, body)
			return
		}
		req.idemKey = strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		f.serveIdempotent(w, req, raw, h)
	})
}

func (f *Fake) authenticate(r *http.Request) (string, *apiError) {
	var key string
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Bearer "):
		key = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Basic "):
		// curl -u sk_test_...: sends the key as the user name.
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
		if err == nil {
			key, _, _ = strings.Cut(string(b), ":")
		}
	}
	if key == "" {
		return "", &apiError{status: http.StatusUnauthorized, Type: "invalid_request_error",
			Message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."}
	}
	ok := false
	if len(f.opts.APIKeys) == 0 {
		ok = strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "rk_test_")
	}
	for _, k := range f.opts.APIKeys {
		ok = ok || k == key
	}
	if !ok {
		return "", &apiError{status: http.StatusUnauthorized, Type: "invalid_request_error",
			Message: "Invalid API Key provided: " + redactKey(key)}
	}
	return key, nil
}

func redactKey(k string) string {
	if len(k) <= 12 {
		return strings.Repeat("*", len(k))
	}
	return k[:8] + strings.Repeat("*", len(k)-12) + k[len(k)-4:]
}

// apiError is Stripe's error object; status is the HTTP status it travels with.
type apiError struct {
	status  int
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func invalid(param, code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, Type: "invalid_request_error", Code: code,
		Param: param, Message: fmt.Sprintf(format, args...)}
}

func missing(param string) *apiError {
	return invalid(param, "parameter_missing", "Missing required param: %s.", param)
}

func noSuch(object, param, id string) *apiError {
	return &apiError{status: http.StatusNotFound, Type: "invalid_request_error", Code: "resource_missing",
		Param: param, Message: fmt.Sprintf("No such %s: '%s'", object, id)}
}

// respond encodes a handler's result as a status and JSON body.
func respond(v any, err error) (int, []byte) {
	if err != nil {
		ae, ok := err.(*apiError)
		if !ok {
			ae = &apiError{status: http.StatusInternalServerError, Type: "api_error", Message: err.Error()}
		}
		body, _ := json.Marshal(map[string]*apiError{"error": ae})
		return ae.status, body
	}
	body, err := json.Marshal(v)
	if err != nil {
		return respond(nil, err)
	}
	return http.StatusOK, body
}

func writeError(w http.ResponseWriter, e *apiError) {
	status, body := respond(nil, e)
	writeRaw(w, status, body)
}

// maxBody is the largest request body the fake reads.
const maxBody = 1 << 20

// readBody reads a request's body, in one read when it has a length (as
// stripe-go's do not, but parkgate's Checkout call does).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, maxBody)
	if n := r.ContentLength; n > 0 && n <= maxBody {
		body := make([]byte, n)
		_, err := io.ReadFull(rd, body)
		return body, err
	}
	return io.ReadAll(rd)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Not append(body, '\n'): body may be a stored response that replays
	// share, and appending into its spare capacity is a data race.
	_, _ = w.Write(bytes.TrimSpace(body))
	_, _ = w.Write([]byte{'\n'})
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newID makes an id shaped like Stripe's: a type prefix and random base62.
func newID(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = idAlphabet[int(c)%len(idAlphabet)]
	}
	return prefix + string(out)
}
