package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var lotBulkheadRefused = promauto.NewCounter(prometheus.CounterOpts{
	Name: "parkgate_lot_gate_refused_total",
	Help: "Hold requests answered 429 because their lot had LotInFlight requests in this replica for longer than LotWait.",
})

// holdTimeout bounds the work of one hold request once started, whatever
// the client does meanwhile.
const holdTimeout = 25 * time.Second

type holdBody struct {
	LotID    *string `json:"lot_id"`
	Plate    *string `json:"plate"`
	StartsAt *string `json:"starts_at"`
	EndsAt   *string `json:"ends_at"`
	SpotID   *string `json:"spot_id"`
}

// parseTime reads an RFC 3339 time; absent is the zero time, which
// HoldRequest.Validate refuses as required.
func parseTime(field string, v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return t, cloud.FieldError(field, "%s must be an RFC 3339 time", field)
	}
	return t, nil
}

// request reads the body into a request; the checks of its fields are
// booking's (HoldRequest.Validate).
func (b holdBody) request() (booking.HoldRequest, error) {
	var req booking.HoldRequest
	for _, f := range []struct {
		dst *string
		src *string
	}{{&req.LotID, b.LotID}, {&req.Plate, b.Plate}, {&req.SpotID, b.SpotID}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	var err error
	if req.StartsAt, err = parseTime("starts_at", b.StartsAt); err != nil {
		return req, err
	}
	req.EndsAt, err = parseTime("ends_at", b.EndsAt)
	return req, err
}

func (s *Server) createReservation(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	key := r.Header.Get("Idempotency-Key")
	if err := booking.CheckKey(key); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	var body holdBody
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	req, err := body.request()
	if err == nil {
		err = req.Validate(s.Booking.Now())
	}
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	// The lot's place in this replica first, counted from the moment the
	// body names the lot, before any rate-limit, cache or database call: in
	// a rush, the lot's requests wait here, parked, holding nothing another
	// lot needs, for their turn to ask Redis and Postgres, rather than all
	// asking at once and making every other lot's request wait for the CPU
	// (and the connection pool) behind them. It also paces the rush so that
	// most of it asks once the lot is known full, and is told 409 at once
	// rather than 429 by the lot's rate limit. The service's own bulkhead
	// (booking.Service.LotConcurrency) then bounds the holds of a lot in
	// the database.
	leave, ok := s.lots.Enter(r.Context(), req.LotID)
	if !ok {
		lotBulkheadRefused.Inc()
		s.rateLimited(w, r, time.Second)
		return
	}
	defer leave()
	// The client's and the lot's rate limits are asked by the service, for
	// what costs the database: not for a replay, nor for a lot known to be
	// full (409 at once, not 429 to come back and learn it).
	var retryAfter time.Duration
	var limits booking.Limits
	if s.Limiter != nil {
		limit := func(allow func(context.Context, string) (bool, time.Duration), id string) func(context.Context) error {
			return func(ctx context.Context) error {
				ok, after := allow(ctx, id)
				if !ok {
					retryAfter = after
					return errLimited
				}
				return nil
			}
		}
		limits = booking.Limits{Client: limit(s.Limiter.AllowClient, clientID(r)), Lot: limit(s.Limiter.AllowLot, req.LotID)}
		// The same limits asked by the service's guard in the round trip
		// it makes anyway, when the limiter is that guard.
		if g, ok := s.Limiter.(cloud.Admitter); ok && any(g) == any(s.Booking.Guard) {
			limits.ClientID = clientID(r)
			limits.Refused = func(after time.Duration) error {
				retryAfter = after
				return errLimited
			}
		}
	}
	// A client that hangs up must not cut a hold in half: the hold, its
	// Checkout Session and the stored answer are finished regardless, so
	// the retry replays it instead of waiting out the key's lease.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), holdTimeout)
	defer cancel()
	resp, err := s.Booking.Hold(ctx, key, req, limits)
	if errors.Is(err, errLimited) {
		s.rateLimited(w, r, retryAfter)
		return
	}
	if errors.Is(err, cloud.ErrStoreUnavailable) {
		// Whether the hold was made is for the retry to find out.
		err = fmt.Errorf("%w: %w", &cloud.Error{Code: cloud.EUnavailable,
			Message: cloud.ErrStoreUnavailable.Message + " with the same Idempotency-Key"}, err)
	}
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeHold(w, resp)
}

var errLimited = errors.New("the client's or the lot's rate limit refused the hold")

func (s *Server) writeHold(w http.ResponseWriter, resp booking.Response) {
	if resp.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if resp.Status == http.StatusCreated {
		id := resp.ID
		if id == "" {
			// A replay: the id is in the body alone. A fresh hold's is not
			// read back from the body it just encoded (5% of parkcloud's
			// CPU per hold).
			var created struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(resp.Body, &created) == nil {
				id = created.ID
			}
		}
		if id != "" {
			w.Header().Set("Location", "/v1/reservations/"+id)
		}
	}
	writeRaw(w, resp.Status, resp.Body)
}

func (s *Server) getReservation(w http.ResponseWriter, r *http.Request) {
	res, err := s.Booking.Reservation(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeReservation(w, r, res, s.mayAct(r, res))
}
