package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
)

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

func parseTime(field string, v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, cloud.FieldError(field, "%s is required (RFC 3339)", field)
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return t, cloud.FieldError(field, "%s must be an RFC 3339 time", field)
	}
	return t, nil
}

func (b holdBody) request() (booking.HoldRequest, error) {
	var req booking.HoldRequest
	if b.LotID == nil || *b.LotID == "" {
		return req, cloud.FieldError("lot_id", "lot_id is required")
	}
	if b.Plate == nil || *b.Plate == "" {
		return req, cloud.FieldError("plate", "plate is required")
	}
	req.LotID, req.Plate = *b.LotID, *b.Plate
	if id, err := uuid.Parse(req.LotID); err == nil {
		// One spelling per lot (upper case, braces and urn:uuid: parse
		// too), so the gate, the rate limit and the request hash all see
		// the same lot the database does.
		req.LotID = id.String()
	}
	var err error
	if req.StartsAt, err = parseTime("starts_at", b.StartsAt); err != nil {
		return req, err
	}
	if req.EndsAt, err = parseTime("ends_at", b.EndsAt); err != nil {
		return req, err
	}
	if b.SpotID != nil {
		req.SpotID = *b.SpotID
	}
	return req, nil
}

func (s *Server) createReservation(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EIdempotencyMiss, "the Idempotency-Key header is required"))
		return
	}
	var body holdBody
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	req, err := body.request()
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	// The lot's place in this replica first: in a rush, the lot's requests
	// wait here, parked, for their turn to ask Redis and Postgres, rather
	// than all asking at once and making every other lot's request wait
	// for the CPU behind them.
	leave, ok := s.gate.enter(r.Context(), req.LotID)
	if !ok {
		lotGateRefused.Inc()
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
		var created struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(resp.Body, &created) == nil {
			w.Header().Set("Location", "/v1/reservations/"+created.ID)
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
	writeJSON(w, http.StatusOK, res)
}
