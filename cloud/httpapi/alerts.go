package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
)

// The operator's alert endpoints and the lot's edges as the cloud last
// heard of them.

// webhookEndpointJSON is an endpoint as answered; the secret only on create,
// as Stripe shows it: a list an admin's browser renders should not spread it.
type webhookEndpointJSON struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func endpointJSON(e cloud.WebhookEndpoint, withSecret bool) webhookEndpointJSON {
	out := webhookEndpointJSON{ID: e.ID, URL: e.URL, Events: e.Events, CreatedAt: e.CreatedAt.UTC()}
	if withSecret {
		out.Secret = e.Secret
	}
	return out
}

func (s *Server) alertsConfigured(w http.ResponseWriter, r *http.Request) bool {
	if s.Alerts == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "alerts are not configured"))
		return false
	}
	return true
}

// createWebhookEndpoint is POST /v1/webhook-endpoints {"url","events"}.
func (s *Server) createWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	if !s.alertsConfigured(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	var body struct {
		URL    *string  `json:"url"`
		Events []string `json:"events"`
	}
	if err := decode(r, &body); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if body.URL == nil {
		writeError(w, r, s.Log, cloud.FieldError("url", "url is required"))
		return
	}
	e, err := cloud.NewWebhookEndpoint(*body.URL, body.Events)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if e, err = s.Alerts.CreateWebhookEndpoint(r.Context(), e); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, endpointJSON(e, true))
}

// listWebhookEndpoints is GET /v1/webhook-endpoints.
func (s *Server) listWebhookEndpoints(w http.ResponseWriter, r *http.Request) {
	if !s.alertsConfigured(w, r) {
		return
	}
	es, err := s.Alerts.WebhookEndpoints(r.Context())
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	out := make([]webhookEndpointJSON, len(es))
	for i, e := range es {
		out[i] = endpointJSON(e, false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhook_endpoints": out})
}

// deleteWebhookEndpoint is DELETE /v1/webhook-endpoints/{id}: what it still
// had to receive is not sent.
func (s *Server) deleteWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	if !s.alertsConfigured(w, r) {
		return
	}
	if err := s.Alerts.DeleteWebhookEndpoint(r.Context(), chi.URLParam(r, "id")); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type edgeJSON struct {
	GateID     string     `json:"gate_id"`
	Status     string     `json:"status"`
	LastSeen   *time.Time `json:"last_seen"`
	AppliedSeq int64      `json:"applied_seq"`
}

// lotEdges is GET /v1/lots/{id}/edges: each gate's recorded status, and the
// lot's newest change to compare its applied_seq with.
func (s *Server) lotEdges(w http.ResponseWriter, r *http.Request) {
	if s.Edges == nil {
		writeError(w, r, s.Log, cloud.Errorf(cloud.EUnavailable, "edge status is not configured"))
		return
	}
	le, err := s.Edges.LotEdges(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	gates := make([]edgeJSON, len(le.Gates))
	for i, g := range le.Gates {
		gates[i] = edgeJSON{GateID: g.GateID, Status: g.Status, AppliedSeq: g.AppliedSeq}
		if !g.LastSeen.IsZero() {
			seen := g.LastSeen.UTC()
			gates[i].LastSeen = &seen
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"lot_seq": le.LotSeq, "gates": gates})
}
