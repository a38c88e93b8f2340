package httpapi

import (
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
)

func (s *Server) createEdgeToken(w http.ResponseWriter, r *http.Request) {
	if s.EdgeTokens == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "edge sync is not configured"))
		return
	}
	lotID := chi.URLParam(r, "id")
	if _, err := s.DB.Lot(r.Context(), lotID); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	tok, err := s.EdgeTokens.CreateEdgeToken(r.Context(), lotID)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"token": tok, "lot_id": lotID})
}

func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	if s.EdgeTokens == nil || s.Feed == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "edge sync is not configured"))
		return
	}
	lotID := chi.URLParam(r, "lot_id")
	tok := bearer(r)
	ok := false
	if tok != "" {
		var err error
		if ok, err = s.EdgeTokens.VerifyEdgeToken(r.Context(), lotID, tok); err != nil {
			writeError(w, r, s.Log, err)
			return
		}
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parkgate-edge"`)
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnauthorized, "a valid edge token of this lot is required"))
		return
	}
	after := int64(0)
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, r, s.Log, cloud.FieldError("after", "after must be a sequence number (0 or more)"))
			return
		}
		after = n
	}
	// As many as the store gives in one page: an edge catching up after a
	// long outage needs few round trips.
	page, err := s.Feed.Changes(r.Context(), lotID, after, cloud.MaxChangesLimit)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if s.Webhooks == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "payments are not configured"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxWebhookBody)
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, r, s.Log, decodeError(err))
		return
	}
	sig := r.Header.Get("Stripe-Signature")
	if sig == "" {
		sig = r.Header.Get("X-Signature")
	}
	dup, err := s.Webhooks.Receive(r.Context(), payload, sig)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "duplicate": dup})
}
