package httpapi

import (
	"context"
	"crypto/subtle"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
)

// isAdmin reports whether the request carries the admin token.
func (s *Server) isAdmin(r *http.Request) bool {
	return s.AdminToken != "" && subtle.ConstantTimeCompare([]byte(bearer(r)), []byte(s.AdminToken)) == 1
}

// mayAct reports whether the request may act for res: its driver (the
// access token of its hold) or an operator (the admin token).
func (s *Server) mayAct(r *http.Request, res cloud.Reservation) bool {
	return s.isAdmin(r) || booking.HoldsAccessToken(res, bearer(r))
}

// ownReservation reads the reservation named in the path for a request
// that must act for it, and answers the error or 401 itself when it may
// not; ok is false then.
func (s *Server) ownReservation(w http.ResponseWriter, r *http.Request) (res cloud.Reservation, ok bool) {
	res, err := s.Booking.Reservation(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return res, false
	}
	if !s.mayAct(r, res) {
		s.unauthorized(w, r)
		return res, false
	}
	return res, true
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="parkgate"`)
	writeError(w, r, s.Log, cloud.Errorf(cloud.EUnauthorized,
		"the reservation's access token or an admin token is required"))
}

// emptyBody reads a body that may be absent or an empty JSON object: the
// endpoints without parameters take either, and refuse anything else.
func (s *Server) emptyBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var none struct{}
	return decode(r, &none)
}

// cancelReservation is POST /v1/reservations/{id}/cancel.
func (s *Server) cancelReservation(w http.ResponseWriter, r *http.Request) {
	res, ok := s.ownReservation(w, r)
	if !ok {
		return
	}
	if err := s.emptyBody(w, r); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	res, err := s.Booking.Cancel(r.Context(), res.ID)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeReservation(w, r, res, true)
}

// writeReservation answers with a reservation; the access code only to
// whom may act for it.
func (s *Server) writeReservation(w http.ResponseWriter, r *http.Request, res cloud.Reservation, trusted bool) {
	res.AccessCode = ""
	if trusted && s.AccessCodes != nil && res.Status.OpensGate() {
		code, err := s.AccessCodes(res)
		if err != nil {
			writeError(w, r, s.Log, err)
			return
		}
		res.AccessCode = code
	}
	writeJSON(w, http.StatusOK, res)
}

// extendReservation is POST /v1/reservations/{id}/extensions.
func (s *Server) extendReservation(w http.ResponseWriter, r *http.Request) {
	res, ok := s.ownReservation(w, r)
	if !ok {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if err := booking.CheckKey(key); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var body struct {
		EndsAt *string `json:"ends_at"`
	}
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	endsAt, err := parseTime("ends_at", body.EndsAt)
	if err == nil && endsAt.IsZero() {
		err = cloud.FieldError("ends_at", "ends_at is required (RFC 3339)")
	}
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	// As a hold: a client that hangs up must not cut the extension in half.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), holdTimeout)
	defer cancel()
	resp, err := s.Booking.Extend(ctx, key, res.ID, endsAt)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if resp.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, resp.Status, resp.Body)
}
