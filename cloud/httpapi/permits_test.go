package httpapi_test

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/cloud/relay"
	"github.com/parkgate/parkgate/protocol"
)

// setupPermits is setup with the permit store and the catch-up feed wired,
// and the relay's wake-ups counted.
func setupPermits(t *testing.T) (*bundle, ed25519.PublicKey, *atomic.Int64) {
	t.Helper()
	s := pgtest.New(t, 10)
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	svc.Permits = s.DB
	woken := new(atomic.Int64)
	svc.Changed = func(string) { woken.Add(1) }
	_, key, _ := ed25519.GenerateKey(nil)
	api := &httpapi.Server{Booking: svc, DB: s.DB, EdgeTokens: s.DB, Feed: relay.NewFeed(s.DB, key), AdminToken: adminToken}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, schema: s, svc: svc}, key.Public().(ed25519.PublicKey), woken
}

var adminHdr = map[string]string{"Authorization": "Bearer " + adminToken}

// changesOf reads the lot's change stream as its edge does and verifies
// every change.
func (b *bundle) changesOf(t *testing.T, lot string, pub ed25519.PublicKey) []protocol.ReservationChange {
	t.Helper()
	r := b.do(t, "POST", "/v1/lots/"+lot+"/edge-tokens", nil, adminHdr)
	tok := r.json(t)["token"].(string)
	r = b.do(t, "GET", "/v1/edge/lots/"+lot+"/changes?after=0", nil, map[string]string{"Authorization": "Bearer " + tok})
	var page protocol.ChangesPage
	if err := json.Unmarshal(r.Body, &page); err != nil {
		t.Fatalf("changes: %d %s", r.Status, r.Body)
	}
	for i := range page.Changes {
		c := &page.Changes[i]
		if err := c.Validate(); err != nil {
			t.Fatalf("change %d invalid: %v", c.Seq, err)
		}
		if err := c.Verify([]ed25519.PublicKey{pub}); err != nil {
			t.Fatalf("change %d: %v", c.Seq, err)
		}
	}
	return page.Changes
}

// TestPermitLifecycle: a permit is created (plate normalised), listed,
// revoked once (a second revoke is 404), and each write is a signed change
// of the lot's stream in seq order, next to its reservation changes.
func TestPermitLifecycle(t *testing.T) {
	t.Parallel()
	b, pub, woken := setupPermits(t)
	lot := b.createLot(t, 2)
	now := time.Now().UTC()
	from, until := now.Add(-time.Hour).Truncate(time.Second), now.Add(30*24*time.Hour).Truncate(time.Second)

	r := b.do(t, "POST", "/v1/lots/"+strings.ToUpper(lot)+"/permits", map[string]any{
		"plate": "mü-ab 12", "valid_from": from.In(time.FixedZone("", 7200)).Format(time.RFC3339),
		"valid_until": until.Format(time.RFC3339), "label": "Staff: Anna",
	}, adminHdr)
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	p := r.json(t)
	id := p["id"].(string)
	if p["plate"] != "MUAB12" || p["lot_id"] != lot || p["label"] != "Staff: Anna" ||
		p["valid_from"] != from.Format(time.RFC3339) || p["valid_until"] != until.Format(time.RFC3339) || p["created_at"] == nil {
		t.Fatalf("created: %s", r.Body)
	}
	if woken.Load() == 0 {
		t.Error("the relay was not woken for the permit's change")
	}
	// Without a valid_from: from now.
	r = b.do(t, "POST", "/v1/lots/"+lot+"/permits", map[string]any{"plate": "CD345", "valid_until": until.Format(time.RFC3339), "label": "  "}, adminHdr)
	if r.Status != 201 || r.json(t)["label"] != "" {
		t.Fatalf("create without valid_from and label: %d %s", r.Status, r.Body)
	}
	second := r.json(t)["id"].(string)

	r = b.do(t, "GET", "/v1/lots/"+lot+"/permits", nil, adminHdr)
	var list struct{ Permits []map[string]any }
	_ = json.Unmarshal(r.Body, &list)
	if r.Status != 200 || len(list.Permits) != 2 || list.Permits[0]["id"] != id {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}

	if r := b.do(t, "DELETE", "/v1/lots/"+lot+"/permits/"+id, nil, adminHdr); r.Status != 204 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "DELETE", "/v1/lots/"+lot+"/permits/"+id, nil, adminHdr); r.Status != 404 || r.code() != "not_found" {
		t.Fatalf("second revoke: %d %s", r.Status, r.Body)
	}
	other := b.createLot(t, 1)
	if r := b.do(t, "DELETE", "/v1/lots/"+other+"/permits/"+second, nil, adminHdr); r.Status != 404 {
		t.Fatalf("revoke through another lot: %d %s", r.Status, r.Body)
	}
	r = b.do(t, "GET", "/v1/lots/"+lot+"/permits", nil, adminHdr)
	_ = json.Unmarshal(r.Body, &list)
	if len(list.Permits) != 1 || list.Permits[0]["id"] != second {
		t.Fatalf("list after revoke: %s", r.Body)
	}

	r = b.do(t, "POST", "/v1/lots/"+lot+"/presence/ab%20-123/reset", nil, adminHdr)
	if r.Status != 202 || r.json(t)["plate"] != "AB123" || r.json(t)["lot_id"] != lot || r.json(t)["seq"] != 4.0 {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}

	cs := b.changesOf(t, lot, pub)
	if len(cs) != 4 {
		t.Fatalf("%d changes, want 4: %+v", len(cs), cs)
	}
	want := []struct {
		kind  protocol.ChangeKind
		op    protocol.Op
		plate string
	}{{protocol.KindPermit, protocol.OpUpsert, "MUAB12"}, {protocol.KindPermit, protocol.OpUpsert, "CD345"},
		{protocol.KindPermit, protocol.OpDelete, "MUAB12"}, {protocol.KindPresenceReset, protocol.OpReset, "AB123"}}
	for i, w := range want {
		c := cs[i]
		if c.Seq != int64(i+1) || c.Kind != w.kind || c.Op != w.op || c.Data[protocol.DataPlate] != w.plate {
			t.Errorf("change %d = %+v, want %+v", i+1, c, w)
		}
	}
	if pm, _ := cs[0].Permit(); pm.ID != id || !pm.ValidFrom.Equal(from) || !pm.ValidUntil.Equal(until) {
		t.Errorf("permit change carries %+v", pm)
	}
	if rs, _ := cs[3].PresenceReset(); rs.IssuedAt.Before(now.Add(-time.Minute)) || rs.IssuedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("reset issued at %v, want about %v", rs.IssuedAt, now)
	}
}

// TestPermitInputRules: every bad input is a 400 naming its field, an
// unknown lot a 404, and no admin token a 401; nothing is written.
func TestPermitInputRules(t *testing.T) {
	t.Parallel()
	b, pub, _ := setupPermits(t)
	lot := b.createLot(t, 1)
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"NoPlate", map[string]any{"valid_until": ts(time.Hour)}, "plate"},
		{"BadPlate", map[string]any{"plate": "A", "valid_until": ts(time.Hour)}, "plate"},
		{"NoValidUntil", map[string]any{"plate": "AB123"}, "valid_until"},
		{"UntilBeforeFrom", map[string]any{"plate": "AB123", "valid_from": ts(2 * time.Hour), "valid_until": ts(time.Hour)}, "valid_until"},
		{"UntilPast", map[string]any{"plate": "AB123", "valid_from": ts(-48 * time.Hour), "valid_until": ts(-time.Hour)}, "valid_until"},
		{"TooLong", map[string]any{"plate": "AB123", "valid_until": ts(401 * 24 * time.Hour)}, "valid_until"},
		{"FromTooFarAhead", map[string]any{"plate": "AB123", "valid_from": ts(367 * 24 * time.Hour), "valid_until": ts(368 * 24 * time.Hour)}, "valid_from"},
		{"BadTime", map[string]any{"plate": "AB123", "valid_until": "tomorrow"}, "valid_until"},
		{"LabelControl", map[string]any{"plate": "AB123", "valid_until": ts(time.Hour), "label": "a\x00b"}, "label"},
		{"LabelTooLong", map[string]any{"plate": "AB123", "valid_until": ts(time.Hour), "label": strings.Repeat("é", 201)}, "label"},
		{"UnknownField", map[string]any{"plate": "AB123", "valid_until": ts(time.Hour), "spot": "A1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(t, "POST", "/v1/lots/"+lot+"/permits", tt.body, adminHdr)
			if r.Status != 400 || r.code() != "invalid_request" || (tt.field != "" && r.field() != tt.field) {
				t.Fatalf("%d %s, want 400 on %q", r.Status, r.Body, tt.field)
			}
		})
	}
	okBody := map[string]any{"plate": "AB123", "valid_until": ts(400 * 24 * time.Hour), "label": strings.Repeat("é", 200)}
	if r := b.do(t, "POST", "/v1/lots/"+lot+"/permits", okBody, nil); r.Status != 401 {
		t.Errorf("no admin token: %d", r.Status)
	}
	for _, bad := range []string{"00000000-0000-0000-0000-000000000000", "not-a-lot"} {
		if r := b.do(t, "POST", "/v1/lots/"+bad+"/permits", okBody, adminHdr); r.Status != 404 {
			t.Errorf("lot %s: %d %s", bad, r.Status, r.Body)
		}
		if r := b.do(t, "POST", "/v1/lots/"+bad+"/presence/AB123/reset", nil, adminHdr); r.Status != 404 {
			t.Errorf("reset at lot %s: %d %s", bad, r.Status, r.Body)
		}
		if r := b.do(t, "GET", "/v1/lots/"+bad+"/permits", nil, adminHdr); r.Status != 404 {
			t.Errorf("list at lot %s: %d %s", bad, r.Status, r.Body)
		}
	}
	if r := b.do(t, "DELETE", "/v1/lots/"+lot+"/permits/nonsense", nil, adminHdr); r.Status != 404 {
		t.Errorf("revoke a malformed id: %d", r.Status)
	}
	if r := b.do(t, "POST", "/v1/lots/"+lot+"/presence/A/reset", nil, adminHdr); r.Status != 400 || r.field() != "plate" {
		t.Errorf("reset of a bad plate: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "POST", "/v1/lots/"+lot+"/presence/AB123/reset", `{"x":1}`, adminHdr); r.Status != 400 {
		t.Errorf("reset with a body: %d %s", r.Status, r.Body)
	}
	if cs := b.changesOf(t, lot, pub); len(cs) != 0 {
		t.Fatalf("refused requests wrote %d changes", len(cs))
	}
	// The longest permit and label allowed pass.
	if r := b.do(t, "POST", "/v1/lots/"+lot+"/permits", okBody, adminHdr); r.Status != 201 {
		t.Fatalf("a 400-day permit: %d %s", r.Status, r.Body)
	}
}

// TestOpenGate: a remote open is a signed gate_open change in the lot's
// stream, naming the gate and the operator's reason, valid for
// booking.RemoteOpenValidity; a missing or empty reason, a bad gate id and
// an unknown lot are refused, and nothing is written for them.
func TestOpenGate(t *testing.T) {
	t.Parallel()
	b, pub, _ := setupPermits(t)
	lot := b.createLot(t, 1)
	r := b.do(t, "POST", "/v1/lots/"+lot+"/gates/entry-1/open", map[string]any{"reason": "intercom: ticket machine broken"}, adminHdr)
	m := r.json(t)
	if r.Status != 202 || m["gate_id"] != "entry-1" || m["lot_id"] != lot || m["seq"] != 1.0 || m["reason"] != "intercom: ticket machine broken" {
		t.Fatalf("open: %d %s", r.Status, r.Body)
	}
	issued, _ := time.Parse(time.RFC3339Nano, m["issued_at"].(string))
	notAfter, _ := time.Parse(time.RFC3339Nano, m["not_after"].(string))
	if d := notAfter.Sub(issued); d != booking.RemoteOpenValidity {
		t.Errorf("valid for %v, want %v", d, booking.RemoteOpenValidity)
	}
	for _, tt := range []struct {
		path   string
		body   any
		status int
		field  string
	}{
		{"/v1/lots/" + lot + "/gates/entry-1/open", map[string]any{}, 400, "reason"},
		{"/v1/lots/" + lot + "/gates/entry-1/open", map[string]any{"reason": "  "}, 400, "reason"},
		{"/v1/lots/" + lot + "/gates/entry-1/open", map[string]any{"reason": strings.Repeat("x", 201)}, 400, "reason"},
		{"/v1/lots/" + lot + "/gates/" + strings.Repeat("g", 65) + "/open", map[string]any{"reason": "x"}, 400, "gate_id"},
		{"/v1/lots/" + lot + "/gates/entry%0A1/open", map[string]any{"reason": "x"}, 400, "gate_id"},
		{"/v1/lots/6f1c3e44-0000-4000-8000-000000000000/gates/entry-1/open", map[string]any{"reason": "x"}, 404, ""},
	} {
		r := b.do(t, "POST", tt.path, tt.body, adminHdr)
		if r.Status != tt.status || (tt.field != "" && r.field() != tt.field) {
			t.Errorf("%s %v: %d %s; want %d naming %q", tt.path, tt.body, r.Status, r.Body, tt.status, tt.field)
		}
	}
	if r := b.do(t, "POST", "/v1/lots/"+lot+"/gates/entry-1/open", map[string]any{"reason": "x"}, nil); r.Status != 401 {
		t.Errorf("without the admin token: %d", r.Status)
	}
	cs := b.changesOf(t, lot, pub)
	if len(cs) != 1 || cs[0].Kind != protocol.KindGateOpen || cs[0].Op != protocol.OpOpen {
		t.Fatalf("changes %+v; want the one remote open", cs)
	}
	g, err := cs[0].GateOpen()
	if err != nil || g.GateID != "entry-1" || g.Reason != "intercom: ticket machine broken" || !g.NotAfter.Equal(notAfter) {
		t.Errorf("the change carries %+v, %v", g, err)
	}
}
