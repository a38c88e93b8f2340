package httpapi

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
)

// The operator's permits and presence resets (admin bearer). Each write goes
// down the lot's change log to its edges; the rules are booking's.

type permitBody struct {
	Plate      *string `json:"plate"`
	ValidFrom  *string `json:"valid_from"`
	ValidUntil *string `json:"valid_until"`
	Label      *string `json:"label"`
}

// createPermit is POST /v1/lots/{id}/permits.
func (s *Server) createPermit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var body permitBody
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	req := booking.PermitRequest{LotID: chi.URLParam(r, "id")}
	if body.Plate == nil {
		writeError(w, r, s.Log, cloud.FieldError("plate", "plate is required"))
		return
	}
	req.Plate = *body.Plate
	if body.Label != nil {
		req.Label = *body.Label
	}
	var err error
	if req.ValidFrom, err = parseTime("valid_from", body.ValidFrom); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if req.ValidUntil, err = parseTime("valid_until", body.ValidUntil); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	p, err := s.Booking.CreatePermit(r.Context(), req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

// listPermits is GET /v1/lots/{id}/permits: the live permits that have not
// ended, current and future, by valid_from; revoked ones are not shown.
func (s *Server) listPermits(w http.ResponseWriter, r *http.Request) {
	ps, err := s.Booking.ListPermits(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if ps == nil {
		ps = []cloud.Permit{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"permits": ps})
}

// deletePermit is DELETE /v1/lots/{id}/permits/{permit_id}: 204 once
// revoked. A permit revoked already answers 404, as an unknown one does:
// the list no longer shows it, and a second revoke writes nothing more to
// the edges.
func (s *Server) deletePermit(w http.ResponseWriter, r *http.Request) {
	if err := s.Booking.RevokePermit(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "permit_id")); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resetPresence is POST /v1/lots/{id}/presence/{plate}/reset: 202, because
// the edges apply it when they next sync (an offline one after it is back),
// not before the answer.
func (s *Server) resetPresence(w http.ResponseWriter, r *http.Request) {
	if err := s.emptyBody(w, r); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	// A plate typed with a space reaches the router escaped ("AB%20123").
	plate, err := url.PathUnescape(chi.URLParam(r, "plate"))
	if err != nil {
		writeError(w, r, s.Log, cloud.FieldError("plate", "plate is not a well-formed path segment"))
		return
	}
	res, err := s.Booking.ResetPresence(r.Context(), chi.URLParam(r, "id"), plate)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

// openGateBody is the body of POST /v1/lots/{id}/gates/{gate_id}/open.
type openGateBody struct {
	Reason *string `json:"reason"`
}

// openGate is POST /v1/lots/{id}/gates/{gate_id}/open: a remote open, sent
// down the lot's change log to the edge running the gate; 202, since the
// edge acts on it when it hears of it (within booking.RemoteOpenValidity).
func (s *Server) openGate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var body openGateBody
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if body.Reason == nil {
		writeError(w, r, s.Log, cloud.FieldError("reason", "reason is required: an open nobody can explain later is what an audit is for"))
		return
	}
	gate, err := url.PathUnescape(chi.URLParam(r, "gate_id"))
	if err != nil {
		writeError(w, r, s.Log, cloud.FieldError("gate_id", "gate_id is not a well-formed path segment"))
		return
	}
	res, err := s.Booking.OpenGate(r.Context(), chi.URLParam(r, "id"), gate, *body.Reason)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}
