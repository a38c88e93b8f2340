package httpapi_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDriverPage: GET / finds lots by name and near a location, server
// side (it reads without script), shows each one's free spots and the
// window's price, and renders a hold form whose data, sent as the page's
// script sends it, makes a hold that goes on to Checkout. Bad input is a
// 400 page naming the field.
func TestDriverPage(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	central := b.createLot(t, 2)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Hour).UTC()
	end := start.Add(90 * time.Minute)
	window := "&starts_at=" + url.QueryEscape(start.Format(time.RFC3339)) + "&ends_at=" + url.QueryEscape(end.Format(time.RFC3339))

	empty := b.do(t, "GET", "/", nil, nil)
	if empty.Status != 200 || !strings.HasPrefix(empty.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(empty.Body), `id="search"`) || strings.Contains(string(empty.Body), "found</h2>") {
		t.Fatalf("GET /: %d %s", empty.Status, empty.Body)
	}

	for _, path := range []string{
		"/?name=CENTR" + window,
		"/?lat=48.137&lng=11.575&radius_m=500" + window,
	} {
		p := b.do(t, "GET", path, nil, nil)
		body := string(p.Body)
		if p.Status != 200 || !strings.Contains(body, "<h3>Central</h3>") || !strings.Contains(body, "2 of 2 spots free") ||
			!strings.Contains(body, "3.75 EUR") { // 250 an hour, 90 minutes
			t.Fatalf("%s: %d %s", path, p.Status, body)
		}
		if strings.Contains(path, "lat=") != strings.Contains(body, " m away") {
			t.Errorf("%s: a distance shown only for a search by location: %s", path, body)
		}
		form := regexp.MustCompile(`<form class="hold" data-lot="([^"]+)" data-starts-at="([^"]+)" data-ends-at="([^"]+)">`).FindStringSubmatch(body)
		if form == nil || form[1] != central {
			t.Fatalf("%s: no hold form for lot %s: %s", path, central, body)
		}
		if form[2] != start.Format(time.RFC3339) || form[3] != end.Format(time.RFC3339) {
			t.Errorf("%s: the form's window %s..%s, want %s..%s", path, form[2], form[3], start.Format(time.RFC3339), end.Format(time.RFC3339))
		}
	}

	// What the script sends: the form's lot and window, a plate, a key.
	p := b.do(t, "GET", "/?name=central"+window, nil, nil)
	form := regexp.MustCompile(`data-lot="([^"]+)" data-starts-at="([^"]+)" data-ends-at="([^"]+)"`).FindStringSubmatch(string(p.Body))
	r := b.do(t, "POST", "/v1/reservations", map[string]any{"lot_id": form[1], "plate": "dr 12 ab", "starts_at": form[2], "ends_at": form[3]},
		key("page-0123456789abcdef0123456789abcdef"))
	if r.Status != 201 {
		t.Fatalf("the hold the page's form makes: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	if pay, _ := m["payment"].(map[string]any); pay == nil || pay["url"] == "" || m["access_token"] == "" {
		t.Errorf("the hold has no Checkout URL or token for the page to go on with: %s", r.Body)
	}
	if p := b.do(t, "GET", "/?name=central"+window, nil, nil); !strings.Contains(string(p.Body), "1 of 2 spots free") {
		t.Errorf("after a hold: %s", p.Body)
	}

	// A currency with no minor unit is shown as such: 250 yen an hour for
	// 90 minutes is 375 yen, not 3.75.
	if r := b.do(t, "POST", "/v1/lots", lotBody(func(m map[string]any) {
		m["name"], m["hourly_rate"] = "Tokyo Station", map[string]any{"amount": 250, "currency": "JPY"}
	}), adminHdr); r.Status != 201 {
		t.Fatalf("create a yen lot: %d %s", r.Status, r.Body)
	}
	if p := b.do(t, "GET", "/?name=tokyo"+window, nil, nil); !strings.Contains(string(p.Body), "375 JPY") {
		t.Errorf("a yen lot's price: %s", p.Body)
	}

	if p := b.do(t, "GET", "/?name=nowhere"+window, nil, nil); p.Status != 200 || !strings.Contains(string(p.Body), "0 lots found") {
		t.Errorf("no match: %d %s", p.Status, p.Body)
	}
	for _, tt := range []struct{ path, field string }{
		{"/?lat=91&lng=0" + window, "lat"},
		{"/?lat=48&lng=11&starts_at=yesterday", "starts_at"},
		{"/?name=" + strings.Repeat("x", 101), "name"},
		{"/?name=x&from=soon&until=later", "from"},
	} {
		p := b.do(t, "GET", tt.path, nil, nil)
		if p.Status != 400 || !strings.Contains(string(p.Body), `class="error">`+tt.field+":") {
			t.Errorf("%s: %d %s; want 400 naming %s", tt.path, p.Status, p.Body, tt.field)
		}
	}
}
