package httpapi

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/internal/bulkhead"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Webhooks takes Stripe's webhook calls.
type Webhooks interface {
	// Receive verifies a signed payload (an invalid_signature error when it
	// is not) and records the event durably; duplicate reports whether the
	// event was already recorded.
	Receive(ctx context.Context, payload []byte, signature string) (duplicate bool, err error)
}

// Check is one named readiness check; Required ones fail /readyz.
type Check struct {
	Name     string
	Required bool
	Check    func(ctx context.Context) error
}

// Server is the cloud HTTP API.
type Server struct {
	Booking    *booking.Service
	DB         cloud.Store
	Reads      cloud.LotReader         // searches, from a read replica that may lag DB (see Server.search); nil: DB
	EdgeTokens cloud.EdgeTokens        // nil: edge endpoints answer 503
	EdgeKeys   cloud.EdgeKeys          // nil: key registration answers 503
	Feed       cloud.ChangeFeed        // nil: the catch-up endpoint answers 503
	Webhooks   Webhooks                // nil: webhook answers 503
	Alerts     cloud.WebhookEndpoints  // nil: webhook endpoints answer 503
	Edges      cloud.EdgeStatusReader  // nil: GET /v1/lots/{id}/edges answers 503
	Limiter    cloud.Limiter           // nil: no rate limits
	Cache      cloud.AvailabilityCache // nil: availability always from Postgres
	AdminToken string
	// AccessCodes, when set, makes the signed access code of a
	// reservation that opens the gate, shown to its driver and admins.
	AccessCodes func(cloud.Reservation) (string, error)
	Checks      []Check
	Log         *slog.Logger
	// MaxBody bounds request bodies; the webhook has its own bound.
	MaxBody        int64
	MaxWebhookBody int64
	// LotInFlight bounds one lot's hold requests in this replica at once
	// (default 8); more wait up to LotWait (default 250ms) for a place,
	// holding nothing, and are answered 429 if none comes free (see
	// Server.lots). Keep it well under the Postgres pool: each may hold a
	// connection, and the pool is every lot's.
	LotInFlight int
	LotWait     time.Duration
	Now         func() time.Time

	// lots is the per-lot bulkhead of hold requests (see createReservation).
	lots bulkhead.PerKey
}

var (
	requestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parkgate_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method", "route", "status"})
)

// Handler returns the routed API with its middleware.
func (s *Server) Handler() http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.MaxBody <= 0 {
		s.MaxBody = 64 << 10
	}
	if s.MaxWebhookBody <= 0 {
		s.MaxWebhookBody = 512 << 10
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.LotInFlight <= 0 {
		s.LotInFlight = 8
	}
	if s.LotWait <= 0 {
		s.LotWait = 250 * time.Millisecond
	}
	s.lots.Cap, s.lots.Wait = s.LotInFlight, s.LotWait
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, s.metrics, s.jsonBodies)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.readyz)
	// GET only, as Prometheus scrapes: the route is then one method, as
	// openapi.json says, and not every method.
	r.Method(http.MethodGet, "/metrics", promhttp.Handler())
	r.Get("/openapi.json", s.openAPI)
	s.pages(r) // the driver's landing pages after Checkout

	r.Route("/v1", func(r chi.Router) {
		r.With(s.limitClients).Group(func(r chi.Router) {
			r.Get("/lots", s.searchLots)
			r.Get("/lots/{id}/availability", s.availability)
			r.Get("/lots/{id}", s.getLot)
			r.Get("/reservations/{id}", s.getReservation)
		})
		// A hold asks the client's limit itself, after its cheap answers.
		r.Post("/reservations", s.createReservation)
		r.With(s.limitClients).Post("/reservations/{id}/cancel", s.cancelReservation)
		r.With(s.limitClients).Post("/reservations/{id}/extensions", s.extendReservation)
		r.With(s.admin).Post("/lots", s.createLot)
		r.With(s.admin).Post("/lots/{id}/edge-tokens", s.createEdgeToken)
		r.With(s.admin).Patch("/lots/{id}", s.patchLot)
		r.With(s.admin).Get("/lots/{id}/reservations", s.lotReservations)
		r.With(s.admin).Get("/lots/{id}/gate-events", s.lotGateEvents)
		r.With(s.admin).Post("/reservations/{id}/refund", s.refundReservation)
		r.With(s.admin).Get("/lots/{id}/edges", s.lotEdges)
		r.With(s.admin).Post("/webhook-endpoints", s.createWebhookEndpoint)
		r.With(s.admin).Get("/webhook-endpoints", s.listWebhookEndpoints)
		r.With(s.admin).Delete("/webhook-endpoints/{id}", s.deleteWebhookEndpoint)
		r.With(s.admin).Post("/lots/{id}/permits", s.createPermit)
		r.With(s.admin).Get("/lots/{id}/permits", s.listPermits)
		r.With(s.admin).Delete("/lots/{id}/permits/{permit_id}", s.deletePermit)
		r.With(s.admin).Post("/lots/{id}/presence/{plate}/reset", s.resetPresence)
		r.With(s.admin).Post("/lots/{id}/gates/{gate_id}/open", s.openGate)
		r.Get("/edge/lots/{lot_id}/changes", s.changes)
		r.Post("/edge/lots/{lot_id}/keys", s.registerEdgeKey)
		r.Post("/payments/webhook", s.webhook)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.Log, cloud.Errorf(cloud.ENotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// Allow names what this path does take (RFC 9110 15.5.6), asked
		// of the router itself so it cannot drift from the routes.
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, req.URL.Path) {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		r := req
		writeRaw(w, http.StatusMethodNotAllowed, cloud.MarshalError(cloud.FieldError("", "method %s not allowed here", r.Method)))
	})
	return r
}

func (s *Server) metrics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil {
			// Once: chi joins and cleans the pattern on every call.
			if p := rc.RoutePattern(); p != "" {
				route = p
			}
		}
		requestDuration.WithLabelValues(r.Method, route, strconv.Itoa(ww.Status())).Observe(time.Since(start).Seconds())
	})
}

// clientID is who a request counts against for the per-client limit: the
// peer address, as a reverse proxy in front would be configured to pass on.
func clientID(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) limitClients(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Limiter != nil {
			if ok, after := s.Limiter.AllowClient(r.Context(), clientID(r)); !ok {
				s.rateLimited(w, r, after)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request, after time.Duration) {
	secs := int((after + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, r, s.Log, cloud.Errorf(cloud.ERateLimited, "too many requests; retry after %d s", secs))
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if s.AdminToken == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parkgate"`)
			writeError(w, r, s.Log, cloud.Errorf(cloud.EUnauthorized, "a valid admin bearer token is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readyz names each dependency ok, degraded or down. The errors go to the
// log, not the answer: their text may name hosts, users and ports, and the
// probe is often reachable from outside.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := http.StatusOK
	checks := map[string]string{}
	all := append([]Check{{Name: "database", Required: true, Check: s.DB.Ping}}, s.Checks...)
	for _, c := range all {
		err := c.Check(ctx)
		switch {
		case err == nil:
			checks[c.Name] = "ok"
			continue
		case c.Required:
			status = http.StatusServiceUnavailable
			checks[c.Name] = "down"
		default:
			checks[c.Name] = "degraded"
		}
		s.Log.Warn("readiness check failed", "check", c.Name, "err", err)
	}
	word := "ok"
	if status != http.StatusOK {
		word = "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks})
}
