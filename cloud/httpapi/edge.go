package httpapi

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/protocol"
)

func (s *Server) createEdgeToken(w http.ResponseWriter, r *http.Request) {
	if s.EdgeTokens == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "edge sync is not configured"))
		return
	}
	// The lot's one spelling, so the answer names it as every other does.
	lotID, err := booking.LotID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
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

// edgeLotID is the path's lot id in its one spelling when it is a uuid, so
// answers name the lot as every other answer does; anything else is left as
// sent, for edgeAuth to refuse.
func edgeLotID(r *http.Request) string {
	id := chi.URLParam(r, "lot_id")
	if c, err := booking.LotID(id); err == nil {
		return c
	}
	return id
}

// edgeAuth answers 401 and returns false unless the request carries a live
// edge token of lotID.
func (s *Server) edgeAuth(w http.ResponseWriter, r *http.Request, lotID string) bool {
	tok := bearer(r)
	ok := false
	if tok != "" {
		var err error
		if ok, err = s.EdgeTokens.VerifyEdgeToken(r.Context(), lotID, tok); err != nil {
			writeError(w, r, s.Log, err)
			return false
		}
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parkgate-edge"`)
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnauthorized, "a valid edge token of this lot is required"))
	}
	return ok
}

// registerEdgeKey is POST /v1/edge/lots/{lot_id}/keys {"public_key"}: an
// agent registers the key its gate events are signed with. It answers 201
// whether the key is new or known, so an agent that retries after a lost
// answer sees the same success; "created" tells the two apart.
func (s *Server) registerEdgeKey(w http.ResponseWriter, r *http.Request) {
	if s.EdgeTokens == nil || s.EdgeKeys == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "edge sync is not configured"))
		return
	}
	lotID := edgeLotID(r)
	if !s.edgeAuth(w, r, lotID) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var body struct {
		PublicKey *string `json:"public_key"`
	}
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if body.PublicKey == nil {
		writeError(w, r, s.Log, cloud.FieldError("public_key", "public_key is required"))
		return
	}
	key, err := protocol.ParsePublicKey(*body.PublicKey)
	if err != nil {
		writeError(w, r, s.Log, cloud.FieldError("public_key", "public_key must be standard base64 of a %d-byte ed25519 public key", ed25519.PublicKeySize))
		return
	}
	created, err := s.EdgeKeys.RegisterEdgeKey(r.Context(), lotID, key)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"lot_id": lotID, "public_key": protocol.EncodePublicKey(key), "created": created})
}

func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	if s.EdgeTokens == nil || s.Feed == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "edge sync is not configured"))
		return
	}
	lotID := edgeLotID(r)
	if !s.edgeAuth(w, r, lotID) {
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
