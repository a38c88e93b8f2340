package httpapi_test

import (
	"strings"
	"testing"
	"time"
)

// TestLandingPages (finding 18): Checkout's return URLs land on a page
// that shows the reservation's current status, not a 404.
func TestLandingPages(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "PAGE1", start, start.Add(time.Hour)), key("page"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	id, sess := m["id"].(string), m["payment"].(map[string]any)["session_id"].(string)

	p := b.do(t, "GET", "/reservations/"+strings.ToUpper(id)+"?session_id="+sess, nil, nil)
	if p.Status != 200 || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(p.Body), "being confirmed") || !strings.Contains(string(p.Body), `http-equiv="refresh"`) ||
		!strings.Contains(string(p.Body), "PAGE1") {
		t.Errorf("page while PENDING: %d %s", p.Status, p.Body)
	}
	if _, err := b.fake.Pay(sess); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "CONFIRMED")
	if p := b.do(t, "GET", "/reservations/"+id, nil, nil); p.Status != 200 || !strings.Contains(string(p.Body), "confirmed") ||
		strings.Contains(string(p.Body), "refresh") {
		t.Errorf("page once CONFIRMED: %d %s", p.Status, p.Body)
	}
	for _, path := range []string{"/reservations/0b7e4f4e-1c1a-4b8e-9d55-3f2a8c1e6d11", "/reservations/%3Cscript%3E"} {
		if p := b.do(t, "GET", path, nil, nil); p.Status != 404 || strings.Contains(string(p.Body), "<script>") {
			t.Errorf("GET %s: %d %s; want a 404 page", path, p.Status, p.Body)
		}
	}
	for _, path := range []string{"/paid?session_id=cs_x", "/cancelled"} {
		if p := b.do(t, "GET", path, nil, nil); p.Status != 200 || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %s; want a short page", path, p.Status, p.Body)
		}
	}
	req := b.do(t, "GET", "/paid?reservation_id="+id, nil, nil) // the client follows the redirect
	if req.Status != 200 || !strings.Contains(string(req.Body), "confirmed") {
		t.Errorf("/paid with the reservation: %d %s; want its page", req.Status, req.Body)
	}
}
