package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/protocol"
)

// The operator API of a running lot: its page (public), its settings, its
// reservations and gate events page by page, and refunds.

// Bounds of the operator API.
const (
	defaultPageLimit   = 50
	maxPageLimit       = 500
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
	maxDeniedCount     = 1000
	maxDeniedWindow    = 24 * time.Hour
)

// lotView is a lot as GET and PATCH /v1/lots/{id} answer it.
type lotView struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Latitude         float64           `json:"latitude"`
	Longitude        float64           `json:"longitude"`
	TimeZone         string            `json:"time_zone"`
	TotalSpots       int               `json:"total_spots"`
	HourlyRate       cloud.Money       `json:"hourly_rate"`
	State            string            `json:"state"`
	Closed           bool              `json:"closed"`
	Occupancy        cloud.Occupancy   `json:"occupancy"`
	FreeCancellation cloud.Duration    `json:"free_cancellation"`
	ExitGrace        cloud.Duration    `json:"exit_grace"`
	DeniedAlert      cloud.DeniedAlert `json:"denied_alert"`
}

// lotView reads the lot's occupancy, from the primary: its state must be
// the truth now, not a replica's past.
func (s *Server) lotView(ctx context.Context, l cloud.Lot) (lotView, error) {
	occ, err := s.DB.Occupancy(ctx, l.ID)
	if err != nil {
		return lotView{}, err
	}
	return lotView{ID: l.ID, Name: l.Name, Latitude: l.Latitude, Longitude: l.Longitude, TimeZone: l.TimeZone,
		TotalSpots: l.TotalSpots, HourlyRate: l.HourlyRate, State: cloud.LotState(l, occ), Closed: l.Closed,
		Occupancy: occ, FreeCancellation: l.FreeCancellation, ExitGrace: l.ExitGrace, DeniedAlert: l.DeniedAlert}, nil
}

// getLot is GET /v1/lots/{id}.
func (s *Server) getLot(w http.ResponseWriter, r *http.Request) {
	lotID, err := booking.LotID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	l, err := s.DB.Lot(r.Context(), lotID)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	v, err := s.lotView(r.Context(), l)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type patchLotRequest struct {
	Name             *string      `json:"name"`
	HourlyRate       *cloud.Money `json:"hourly_rate"`
	Closed           *bool        `json:"closed"`
	FreeCancellation *string      `json:"free_cancellation"`
	ExitGrace        *string      `json:"exit_grace"`
	DeniedAlert      *struct {
		Count  *int    `json:"count"`
		Window *string `json:"window"`
	} `json:"denied_alert"`
}

// update checks the request by the rules of a lot's creation and returns
// the change it asks for.
func (req *patchLotRequest) update() (cloud.LotUpdate, error) {
	var u cloud.LotUpdate
	if req.Name != nil {
		name := strings.TrimSpace(*req.Name)
		if err := booking.CheckText("name", name, booking.MaxNameLen); err != nil {
			return u, err
		}
		u.Name = &name
	}
	if req.HourlyRate != nil {
		rate, err := booking.CheckRate(*req.HourlyRate)
		if err != nil {
			return u, err
		}
		u.HourlyRate = &rate
	}
	u.Closed = req.Closed
	for _, p := range []struct {
		field string
		in    *string
		out   **cloud.Duration
	}{{"free_cancellation", req.FreeCancellation, &u.FreeCancellation}, {"exit_grace", req.ExitGrace, &u.ExitGrace}} {
		if p.in == nil {
			continue
		}
		d, err := policy(p.field, p.in, 0)
		if err != nil {
			return u, err
		}
		*p.out = &d
	}
	if a := req.DeniedAlert; a != nil {
		if a.Count != nil {
			if *a.Count < 1 || *a.Count > maxDeniedCount {
				return u, cloud.FieldError("denied_alert.count", "denied_alert.count must be from 1 to %d", maxDeniedCount)
			}
			u.DeniedAlertCount = a.Count
		}
		if a.Window != nil {
			d, err := time.ParseDuration(*a.Window)
			if err != nil || d <= 0 || d > maxDeniedWindow {
				return u, cloud.FieldError("denied_alert.window",
					"denied_alert.window must be a duration such as \"2m\", above 0s and at most %s", maxDeniedWindow)
			}
			w := cloud.Duration(d)
			u.DeniedAlertWindow = &w
		}
	}
	return u, nil
}

// patchLot is PATCH /v1/lots/{id}.
func (s *Server) patchLot(w http.ResponseWriter, r *http.Request) {
	lotID, err := booking.LotID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var req patchLotRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	u, err := req.update()
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	l, err := s.Booking.UpdateLot(r.Context(), lotID, u)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	v, err := s.lotView(r.Context(), l)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// queryLimit reads limit: def when absent, else 1 to max.
func queryLimit(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, cloud.FieldError("limit", "limit must be an integer from 1 to %d", max)
	}
	return n, nil
}

// operatorLot resolves the lot of an operator's read: 404 for a malformed
// or unknown id.
func (s *Server) operatorLot(r *http.Request) (string, error) {
	lotID, err := booking.LotID(chi.URLParam(r, "id"))
	if err != nil {
		return "", err
	}
	if _, err := s.DB.Lot(r.Context(), lotID); err != nil {
		return "", err
	}
	return lotID, nil
}

// reservationFilter reads the query of GET /v1/lots/{id}/reservations.
func reservationFilter(r *http.Request, lotID string) (cloud.ReservationFilter, error) {
	q := r.URL.Query()
	f := cloud.ReservationFilter{LotID: lotID}
	if v := q.Get("status"); v != "" {
		st := cloud.Status(strings.ToUpper(v))
		if !slices.Contains(protocol.Statuses(), st) {
			return f, cloud.FieldError("status", "status must be one of PENDING, CONFIRMED, CHECKED_IN, COMPLETED, EXPIRED, CANCELLED, REFUNDED")
		}
		f.Status = st
	}
	if v := q.Get("plate"); v != "" {
		p, err := protocol.NormalizePlate(v)
		if err != nil {
			return f, cloud.FieldError("plate", "plate must be 2 to 10 letters and digits")
		}
		f.Plate = p
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(t.name); v != "" {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, cloud.FieldError(t.name, "%s must be an RFC 3339 time", t.name)
			}
			*t.dst = tm.UTC()
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, cloud.FieldError("to", "to must be after from")
	}
	var err error
	if f.Limit, err = queryLimit(r, defaultPageLimit, maxPageLimit); err != nil {
		return f, err
	}
	if v := q.Get("cursor"); v != "" {
		c, err := cloud.ParseReservationCursor(v)
		if err != nil {
			return f, err
		}
		f.After = &c
	}
	return f, nil
}

// lotReservations is GET /v1/lots/{id}/reservations.
func (s *Server) lotReservations(w http.ResponseWriter, r *http.Request) {
	lotID, err := s.operatorLot(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	f, err := reservationFilter(r, lotID)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	page, more, err := s.DB.LotReservations(r.Context(), f)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	var next *string
	if more && len(page) > 0 {
		last := page[len(page)-1]
		c := cloud.ReservationCursor{CreatedAt: last.CreatedAt, ID: last.ID}.String()
		next = &c
	}
	if page == nil {
		page = []cloud.Reservation{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reservations": page, "next_cursor": next})
}

// lotGateEvents is GET /v1/lots/{id}/gate-events.
func (s *Server) lotGateEvents(w http.ResponseWriter, r *http.Request) {
	lotID, err := s.operatorLot(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			writeError(w, r, s.Log, cloud.FieldError("after", "after must be a non-negative integer: the last of the previous page"))
			return
		}
	}
	limit, err := queryLimit(r, defaultEventsLimit, maxEventsLimit)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	events, err := s.DB.LotGateEvents(r.Context(), lotID, after, limit)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	last := after
	if len(events) > 0 {
		last = events[len(events)-1].Seq
	}
	if events == nil {
		events = []cloud.StoredGateEvent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "last": last})
}

// refundReservation is POST /v1/reservations/{id}/refund.
func (s *Server) refundReservation(w http.ResponseWriter, r *http.Request) {
	res, err := s.Booking.Reservation(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	var body struct {
		Amount *int64 `json:"amount"`
	}
	if r.ContentLength != 0 {
		r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
		if err := decode(r, &body); err != nil {
			writeError(w, r, s.Log, err)
			return
		}
	}
	// As a hold: an operator who hangs up must not leave a refund half
	// asked; the retry (same key) or the worker finishes it either way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), holdTimeout)
	defer cancel()
	resp, err := s.Booking.Refund(ctx, res.ID, r.Header.Get("Idempotency-Key"), booking.RefundRequest{Amount: body.Amount})
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if resp.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, resp.Status, resp.Body)
}
