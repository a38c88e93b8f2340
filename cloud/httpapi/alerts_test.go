package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/protocol"
)

// TestWebhookEndpointsAndEdges: the operator's alert endpoints and a lot's
// edges, every answer checked against openapi.json.
func TestWebhookEndpointsAndEdges(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 8)
	api := &httpapi.Server{Booking: booking.New(s.DB, nil, nil, nil, 10*time.Minute), DB: s.DB,
		Alerts: s.DB, Edges: s.DB, AdminToken: adminToken}
	h := api.Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	v := newValidator(t, srv.URL, h)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}

	made := v.expect(t, 201, "POST", "/v1/webhook-endpoints", map[string]any{
		"url": "http://127.0.0.1:9/hook", "events": []string{"edge.offline", "edge.online", "edge.offline"}}, admin).json(t)
	id, _ := made["id"].(string)
	if secret, _ := made["secret"].(string); !strings.HasPrefix(secret, cloud.WebhookSecretPrefix) || len(secret) < 30 {
		t.Errorf("secret %q", secret)
	}
	if ev, _ := made["events"].([]any); len(ev) != 2 {
		t.Errorf("events %v, want the two distinct ones", made["events"])
	}
	if made["url"] != "http://127.0.0.1:9/hook" || made["created_at"] == nil {
		t.Errorf("created %v", made)
	}

	bad := []struct {
		name  string
		body  any
		field string
	}{
		{"RelativeURL", map[string]any{"url": "/hook", "events": []string{"edge.online"}}, "url"},
		{"FTP", map[string]any{"url": "ftp://example.com/x", "events": []string{"edge.online"}}, "url"},
		{"NoHost", map[string]any{"url": "https:///x", "events": []string{"edge.online"}}, "url"},
		{"NoURL", map[string]any{"events": []string{"edge.online"}}, "url"},
		{"NoEvents", map[string]any{"url": "https://example.com/x", "events": []string{}}, "events"},
		{"UnknownEvent", map[string]any{"url": "https://example.com/x", "events": []string{"edge.online", "lot.exploded"}}, "events"},
		{"UnknownField", map[string]any{"url": "https://example.com/x", "events": []string{"edge.online"}, "x": 1}, "x"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if r := v.expect(t, 400, "POST", "/v1/webhook-endpoints", c.body, admin); r.code() != cloud.EInvalid || r.field() != c.field {
				t.Errorf("%s: %s, want invalid_request on %s", c.name, r.Body, c.field)
			}
		})
	}
	v.expect(t, 401, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.com/x", "events": []string{"edge.online"}}, nil)
	v.expect(t, 401, "GET", "/v1/webhook-endpoints", nil, nil)

	list := v.expect(t, 200, "GET", "/v1/webhook-endpoints", nil, admin)
	if strings.Contains(string(list.Body), "whsec_") || !strings.Contains(string(list.Body), id) {
		t.Errorf("list %s: want the endpoint, without its secret", list.Body)
	}
	v.expect(t, 204, "DELETE", "/v1/webhook-endpoints/"+id, nil, admin)
	v.expect(t, 404, "DELETE", "/v1/webhook-endpoints/"+id, nil, admin)
	v.expect(t, 404, "DELETE", "/v1/webhook-endpoints/not-an-id", nil, admin)
	if r := v.expect(t, 200, "GET", "/v1/webhook-endpoints", nil, admin); strings.Contains(string(r.Body), id) {
		t.Errorf("deleted endpoint still listed: %s", r.Body)
	}

	lot := v.expect(t, 201, "POST", "/v1/lots", map[string]any{"name": "Edges", "latitude": 48.1, "longitude": 11.5,
		"time_zone": "Europe/Berlin", "spots": 2, "hourly_rate": map[string]any{"amount": 0, "currency": "EUR"}}, admin).json(t)["id"].(string)
	empty := v.expect(t, 200, "GET", "/v1/lots/"+lot+"/edges", nil, admin).json(t)
	if g, _ := empty["gates"].([]any); g == nil || len(g) != 0 {
		t.Errorf("a lot without reports: %v", empty)
	}
	ctx := context.Background()
	at := time.Now()
	for _, st := range []struct {
		gate, state string
		seq         int64
	}{{"entry-1", protocol.StateOnline, 3}, {"exit-1", protocol.StateOnline, 2}, {"exit-1", protocol.StateOffline, 0}} {
		at = at.Add(time.Millisecond)
		if _, err := s.DB.RecordGateStatus(ctx, lot, st.gate, protocol.GateStatus{State: st.state, SyncSeq: st.seq, At: at}, true, at); err != nil {
			t.Fatal(err)
		}
	}
	// A hold on a free lot is a change of the lot's log.
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	v.expect(t, 201, "POST", "/v1/reservations", hold(lot, "AB123", start, start.Add(time.Hour)), key("edges-1"))
	edges := v.expect(t, 200, "GET", "/v1/lots/"+strings.ToUpper(lot)+"/edges", nil, admin).json(t)
	if edges["lot_seq"] != float64(1) {
		t.Errorf("lot_seq %v, want 1", edges["lot_seq"])
	}
	var got []string
	for _, g := range edges["gates"].([]any) {
		m := g.(map[string]any)
		got = append(got, fmt.Sprintf("%v %v %v", m["gate_id"], m["status"], m["applied_seq"]))
		if m["last_seen"] == nil {
			t.Errorf("gate %v: last_seen null after an online status", m)
		}
	}
	if want := []string{"entry-1 online 3", "exit-1 offline 2"}; !slices.Equal(got, want) {
		t.Errorf("gates %v, want %v", got, want)
	}
	v.expect(t, 404, "GET", "/v1/lots/6f1c3e44-0000-4000-8000-000000000000/edges", nil, admin)
	v.expect(t, 404, "GET", "/v1/lots/nope/edges", nil, admin)
	v.expect(t, 401, "GET", "/v1/lots/"+lot+"/edges", nil, nil)
}
