package httpapi_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/protocol"
)

// TestLotReservationsAPI: the operator pages a lot's reservations newest
// first through next_cursor (null at the end), filtered by status, plate
// and window; each as GET /v1/reservations/{id} shows it, no secrets; bad
// parameters are 400 with the field.
func TestLotReservationsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot := b.createLot(t, 30)
	other := b.createLot(t, 1)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	var made []string
	for i := range 23 {
		s := start.Add(time.Duration(i%3) * time.Hour)
		r := b.do(t, "POST", "/v1/reservations", hold(lot, fmt.Sprintf("LR%02d", i), s, s.Add(time.Hour)), key(fmt.Sprintf("lr-%d", i)))
		if r.Status != 201 {
			t.Fatalf("hold %d: %d %s", i, r.Status, r.Body)
		}
		made = append(made, r.json(t)["id"].(string))
	}
	b.do(t, "POST", "/v1/reservations", hold(other, "LR00", start, start.Add(time.Hour)), key("lr-other"))

	base := "/v1/lots/" + lot + "/reservations"
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		q := url.Values{"limit": {"5"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := b.do(t, "GET", base+"?"+q.Encode(), nil, admin())
		if r.Status != 200 {
			t.Fatalf("page: %d %s", r.Status, r.Body)
		}
		m := r.json(t)
		for _, x := range m["reservations"].([]any) {
			res := x.(map[string]any)
			if _, ok := res["access_token"]; ok {
				t.Errorf("a listed reservation shows its access token")
			}
			if _, ok := res["access_code"]; ok {
				t.Errorf("a listed reservation shows its access code")
			}
			got = append(got, res["id"].(string))
		}
		if m["next_cursor"] == nil {
			if pages != 4 {
				t.Errorf("%d pages of 5 for 23", pages+1)
			}
			break
		}
		cursor = m["next_cursor"].(string)
	}
	if len(got) != len(made) {
		t.Fatalf("listed %d, made %d", len(got), len(made))
	}
	for i, id := range got {
		if id != made[len(made)-1-i] {
			t.Fatalf("listed #%d is %s, want %s (newest first)", i, id, made[len(made)-1-i])
		}
	}
	one := b.do(t, "GET", base+"?plate=lr-07", nil, admin()).json(t)["reservations"].([]any)
	if len(one) != 1 || one[0].(map[string]any)["id"] != made[7] {
		t.Errorf("by plate: %v", one)
	}
	single := b.do(t, "GET", "/v1/reservations/"+made[7], nil, nil).json(t)
	for k, v := range single {
		if fmt.Sprint(one[0].(map[string]any)[k]) != fmt.Sprint(v) {
			t.Errorf("listed %s = %v, GET shows %v", k, one[0].(map[string]any)[k], v)
		}
	}
	// Windows start at +0h, +1h, +2h (i%3): [start+1h, start+2h) overlaps only the second.
	win := url.Values{"from": {start.Add(time.Hour).Format(time.RFC3339)}, "to": {start.Add(2 * time.Hour).Format(time.RFC3339)}}
	if n := len(b.do(t, "GET", base+"?"+win.Encode(), nil, admin()).json(t)["reservations"].([]any)); n != 8 {
		t.Errorf("window: %d, want 8", n)
	}
	if n := len(b.do(t, "GET", base+"?status=pending&limit=500", nil, admin()).json(t)["reservations"].([]any)); n != 23 {
		t.Errorf("status PENDING: %d", n)
	}
	if n := len(b.do(t, "GET", base+"?status=CONFIRMED", nil, admin()).json(t)["reservations"].([]any)); n != 0 {
		t.Errorf("status CONFIRMED: %d", n)
	}

	for name, c := range map[string]struct{ query, field string }{
		"LimitZero":    {"limit=0", "limit"},
		"LimitHuge":    {"limit=501", "limit"},
		"LimitWord":    {"limit=ten", "limit"},
		"Status":       {"status=PAID", "status"},
		"Plate":        {"plate=%21", "plate"},
		"From":         {"from=yesterday", "from"},
		"To":           {"to=2026-13-01T00:00:00Z", "to"},
		"Backwards":    {"from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "to"},
		"Cursor":       {"cursor=nonsense", "cursor"},
		"CursorForged": {"cursor=" + "MTIzLm5vdC1hLXV1aWQ", "cursor"},
	} {
		if r := b.do(t, "GET", base+"?"+c.query, nil, admin()); r.Status != 400 || r.field() != c.field {
			t.Errorf("%s: %d %s, want 400 on %s", name, r.Status, r.Body, c.field)
		}
	}
	if r := b.do(t, "GET", base, nil, nil); r.Status != 401 {
		t.Errorf("without the admin token: %d", r.Status)
	}
	for _, id := range []string{"nope", uuid.NewString()} {
		if r := b.do(t, "GET", "/v1/lots/"+id+"/reservations", nil, admin()); r.Status != 404 {
			t.Errorf("lot %s: %d %s", id, r.Status, r.Body)
		}
	}
}

// TestLotGateEventsAPI: the operator reads a lot's gate events in the order
// stored, each as on MQTT plus received_at, and reads on from last.
func TestLotGateEventsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lot, other := b.createLot(t, 2), b.createLot(t, 1)
	for i := range 5 {
		b.open(t, lot, protocol.DirectionEntry, fmt.Sprintf("GE%d", i))
	}
	b.open(t, other, protocol.DirectionEntry, "GEX")
	base := "/v1/lots/" + lot + "/gate-events"
	r := b.do(t, "GET", base+"?limit=3", nil, admin())
	m := r.json(t)
	evs := m["events"].([]any)
	if r.Status != 200 || len(evs) != 3 {
		t.Fatalf("first page: %d %s", r.Status, r.Body)
	}
	e := evs[0].(map[string]any)
	for _, k := range []string{"v", "event_id", "lot_id", "gate_id", "direction", "plate", "confidence", "decision",
		"reason", "occurred_at", "decided_in_us", "received_at", "kind"} {
		if _, ok := e[k]; !ok {
			t.Errorf("event without %s: %v", k, e)
		}
	}
	if e["plate"] != "GE0" || e["lot_id"] != lot {
		t.Errorf("first event: %v", e)
	}
	last := m["last"].(float64)
	m = b.do(t, "GET", base+fmt.Sprintf("?after=%d", int64(last)), nil, admin()).json(t)
	evs = m["events"].([]any)
	if len(evs) != 2 || evs[1].(map[string]any)["plate"] != "GE4" {
		t.Fatalf("second page: %v", m)
	}
	end := m["last"].(float64)
	if m := b.do(t, "GET", base+fmt.Sprintf("?after=%d", int64(end)), nil, admin()).json(t); len(m["events"].([]any)) != 0 || m["last"] != end {
		t.Errorf("past the end: %v", m)
	}
	for name, q := range map[string]string{"AfterNegative": "after=-1", "AfterWord": "after=x", "Limit": "limit=1001"} {
		if r := b.do(t, "GET", base+"?"+q, nil, admin()); r.Status != 400 {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := b.do(t, "GET", base, nil, nil); r.Status != 401 {
		t.Errorf("without the admin token: %d", r.Status)
	}
	if r := b.do(t, "GET", "/v1/lots/"+uuid.NewString()+"/gate-events", nil, admin()); r.Status != 404 {
		t.Errorf("unknown lot: %d", r.Status)
	}
}
