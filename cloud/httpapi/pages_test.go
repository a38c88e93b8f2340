package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	goqr "github.com/piglig/go-qr"
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

// TestReservationPageStatuses: the reservation's page renders for every
// status, offers only what the status allows (the access code while the
// booking opens the gate, cancel while cancellable, extend while
// extendable), and never carries a secret in its HTML.
func TestReservationPageStatuses(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, token := b.paidBooking(t, lot, "PAGE2", "page2", start)
	code := b.do(t, "GET", "/v1/reservations/"+id, nil, map[string]string{"Authorization": "Bearer " + token}).json(t)["access_code"].(string)
	if code == "" {
		t.Fatal("no access code to look for")
	}
	cases := []struct {
		status, title               string
		code, cancel, extend, polls bool
	}{
		{"PENDING", "being confirmed", false, true, false, true},
		{"CONFIRMED", "is confirmed", true, true, true, false},
		{"CHECKED_IN", "You are parked", true, false, true, false},
		{"COMPLETED", "is over", false, false, false, false},
		{"EXPIRED", "has expired", false, false, false, false},
		{"CANCELLED", "is cancelled", false, false, false, false},
		{"REFUNDED", "being refunded", false, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.status, func(t *testing.T) {
			if _, err := b.schema.DB.Pool.Exec(context.Background(), `UPDATE reservations SET status = $2 WHERE id = $1`, id, tc.status); err != nil {
				t.Fatal(err)
			}
			p := b.do(t, "GET", "/reservations/"+id, nil, nil)
			body := string(p.Body)
			if p.Status != 200 || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, tc.title) ||
				!strings.Contains(body, "PAGE2") || !strings.Contains(body, `data-status="`+tc.status+`"`) {
				t.Fatalf("page: %d %s", p.Status, body)
			}
			for _, c := range []struct {
				what string
				want bool
				mark string
			}{
				{"access code", tc.code, `id="qr"`}, {"cancel", tc.cancel, `id="cancel"`},
				{"extend", tc.extend, `id="extend"`}, {"no-script reload", tc.polls, `http-equiv="refresh"`},
			} {
				if got := strings.Contains(body, c.mark); got != c.want {
					t.Errorf("%s shown: %v, want %v", c.what, got, c.want)
				}
			}
			for _, a11y := range []string{`<html lang="en">`, `name="viewport"`, "<h1>", `alt="QR code`, `<label for="ends-at">`} {
				if (a11y == `alt="QR code` && !tc.code) || (a11y == `<label for="ends-at">` && !tc.extend) {
					continue
				}
				if !strings.Contains(body, a11y) {
					t.Errorf("page lacks %s", a11y)
				}
			}
			if strings.Contains(body, token) || strings.Contains(body, code) {
				t.Error("the page's HTML carries the access token or code")
			}
		})
	}
}

// TestReservationQR: the access code's QR image is given only with the
// reservation's access token (or the admin token), only while the booking
// opens the gate, and decodes (with an independent decoder) back to
// exactly the code the API shows.
func TestReservationQR(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, token := b.paidBooking(t, lot, "QRCODE1", "qr1", start)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	code := b.do(t, "GET", "/v1/reservations/"+id, nil, bearer(token)).json(t)["access_code"].(string)

	for name, hdr := range map[string]map[string]string{"NoToken": nil, "WrongToken": bearer(token + "x"), "Code": bearer(code)} {
		if r := b.do(t, "GET", "/reservations/"+id+"/qr.png", nil, hdr); r.Status != 401 || strings.Contains(string(r.Body), code) {
			t.Errorf("%s: %d %s; want 401", name, r.Status, r.Body)
		}
	}
	for name, hdr := range map[string]map[string]string{"AccessToken": bearer(token), "Admin": admin()} {
		r := b.do(t, "GET", "/reservations/"+strings.ToUpper(id)+"/qr.png", nil, hdr)
		if r.Status != 200 || r.Header.Get("Content-Type") != "image/png" || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %v", name, r.Status, r.Header)
		}
		img, err := png.Decode(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := goqr.Decode(img)
		if err != nil || got != code {
			t.Errorf("%s: the QR decodes to %q, %v; want the access code %q", name, got, err, code)
		}
	}
	if r := b.do(t, "GET", "/reservations/0b7e4f4e-1c1a-4b8e-9d55-3f2a8c1e6d11/qr.png", nil, admin()); r.Status != 404 {
		t.Errorf("unknown reservation: %d", r.Status)
	}
	if r := b.do(t, "POST", "/v1/reservations/"+id+"/cancel", nil, bearer(token)); r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, "GET", "/reservations/"+id+"/qr.png", nil, bearer(token)); r.Status != 404 {
		t.Errorf("QR of a cancelled booking: %d; want 404", r.Status)
	}
}

// TestReservationPageLogsNoSecret: whatever the page and its image are
// asked, with good or bad credentials, and when serving the image fails,
// neither the access token nor the access code reaches the server's log.
func TestReservationPageLogsNoSecret(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	var logs bytes.Buffer
	var mu sync.Mutex
	// The signer fails on demand, so that the image's route logs an
	// internal error for a request that carries the token.
	var signFails atomic.Bool
	sign := booking.AccessCodes(codeKey)
	api := &httpapi.Server{Booking: b.svc, DB: b.schema.DB, AdminToken: adminToken,
		AccessCodes: func(r cloud.Reservation) (string, error) {
			if signFails.Load() {
				return "", errors.New("signer unavailable")
			}
			return sign(r)
		},
		Log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, token := b.paidBooking(t, lot, "QRLOG1", "qrlog", start)
	code := b.do(t, "GET", "/v1/reservations/"+id, nil, map[string]string{"Authorization": "Bearer " + token}).json(t)["access_code"].(string)

	get := func(path, auth string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct{ path, auth string }{
		{"/reservations/" + id, ""}, {"/reservations/" + id + "/qr.png", token}, {"/reservations/" + id + "/qr.png", token + "x"},
		{"/reservations/" + id + "/qr.png", code}, {"/reservations/" + id + "/qr.png", ""}, {"/reservations/nope/qr.png", token},
		{"/v1/reservations/" + id, token}, {"/reservations/" + id + "?access_token=" + token, ""},
	} {
		get(c.path, c.auth)
	}
	signFails.Store(true)
	if st := get("/reservations/"+id+"/qr.png", token); st != 500 {
		t.Errorf("QR with a failing signer: %d, want 500", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "signer unavailable") {
		t.Fatalf("the failure was not logged: the test proves nothing:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), code) {
		t.Errorf("a secret reached the log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestPagesCSP: every page forbids framing and loading from elsewhere, and
// the policy of a page with a script (the reservation's, the driver's)
// lists the hashes of exactly the script and style blocks it serves, so a
// browser runs them and nothing else.
func TestPagesCSP(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 1)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	id, _ := b.paidBooking(t, lot, "CSP1", "csp1", start)

	for _, path := range []string{"/reservations/" + id, "/?name=central"} {
		p := b.do(t, "GET", path, nil, nil)
		csp := p.Header.Get("Content-Security-Policy")
		if p.Status != 200 || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("%s: %d, CSP %q", path, p.Status, csp)
		}
		body := string(p.Body)
		for _, tag := range []string{"script", "style"} {
			_, rest, ok := strings.Cut(body, "<"+tag+">")
			inline, _, ok2 := strings.Cut(rest, "</"+tag+">")
			if !ok || !ok2 {
				t.Fatalf("%s: no <%s> in the page", path, tag)
			}
			sum := sha256.Sum256([]byte(inline))
			want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q, the hash of the <%s> served", path, csp, want, tag)
			}
			if strings.Count(body, "<"+tag+">") != 1 {
				t.Errorf("%s: %d <%s> blocks; the policy lists one", path, strings.Count(body, "<"+tag+">"), tag)
			}
		}
	}
	for _, path := range []string{"/reservations/not-a-uuid", "/paid", "/cancelled"} {
		if c := b.do(t, "GET", path, nil, nil).Header.Get("Content-Security-Policy"); !strings.Contains(c, "frame-ancestors 'none'") || strings.Contains(c, "script-src") {
			t.Errorf("%s: CSP %q; want no script and no framing", path, c)
		}
	}
}
