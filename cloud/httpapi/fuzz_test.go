package httpapi

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parkgate/parkgate/cloud/booking"
)

// fuzzRequest is a POST carrying body, as a client would send it.
func fuzzRequest(body string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	return r
}

// refusedAsClientError fails t unless err is one the API answers with a 4xx:
// whatever a client sends, a refusal is its fault, never a 500.
func refusedAsClientError(t *testing.T, body string, err error) {
	t.Helper()
	if st := StatusOf(err); st < 400 || st > 499 {
		t.Fatalf("body %q: %v answers %d, want a 4xx", body, err, st)
	}
}

// FuzzCreateLotBody feeds POST /v1/lots bodies through the handler's own
// decode and checks: no panic, every refusal a 4xx, and an accepted lot is
// one the rest of the cloud may rely on.
func FuzzCreateLotBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"Central","latitude":52.52,"longitude":13.405,"time_zone":"Europe/Berlin","spots":20,"hourly_rate":{"amount":250,"currency":"EUR"}}`,
		`{"name":"Dock","latitude":-33.8,"longitude":151.2,"spots":["A1","A2","B1"],"hourly_rate":{"amount":0,"currency":"AUD"}}`,
		`{"name":" ","latitude":0,"longitude":0,"spots":1,"hourly_rate":{"amount":1,"currency":"EUR"}}`,
		`{"name":"x","latitude":91,"longitude":181,"spots":0,"hourly_rate":{"amount":-1,"currency":"eu"}}`,
		`{"name":"x","latitude":1,"longitude":1,"spots":["a","a"],"hourly_rate":{"amount":9223372036854775807,"currency":"ZZZ"}}`,
		`{"name":"x","latitude":1,"longitude":1,"time_zone":"Local","spots":3,"hourly_rate":{"amount":1,"currency":"EUR"}}`,
		`{"name":"a\u0000b","latitude":1,"longitude":1,"spots":[" "],"hourly_rate":{"amount":1,"currency":"EUR"}}`,
		`{"name":1,"extra":true}`, `{"name":"x"} {}`, `[]`, `null`, ``, `{`, `{"spots":1e400}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req createLotRequest
		if err := decode(fuzzRequest(body), &req); err != nil {
			refusedAsClientError(t, body, err)
			return
		}
		lot, err := req.lot()
		if err != nil {
			refusedAsClientError(t, body, err)
			return
		}
		switch {
		case strings.TrimSpace(lot.Name) == "" || utf8.RuneCountInString(lot.Name) > booking.MaxNameLen || !printable(lot.Name):
			t.Fatalf("body %q: accepted name %q", body, lot.Name)
		case math.IsNaN(lot.Latitude) || math.Abs(lot.Latitude) > 90 || math.IsNaN(lot.Longitude) || math.Abs(lot.Longitude) > 180:
			t.Fatalf("body %q: accepted position %v,%v", body, lot.Latitude, lot.Longitude)
		case lot.HourlyRate.Amount < 0 || len(lot.HourlyRate.Currency) != 3:
			t.Fatalf("body %q: accepted rate %+v", body, lot.HourlyRate)
		case len(lot.Spots) < 1 || len(lot.Spots) > maxSpots:
			t.Fatalf("body %q: accepted %d spots", body, len(lot.Spots))
		}
		if _, err := time.LoadLocation(lot.TimeZone); err != nil {
			t.Fatalf("body %q: accepted time zone %q: %v", body, lot.TimeZone, err)
		}
		seen := map[string]bool{}
		for _, s := range lot.Spots {
			if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > booking.MaxSpotLabelLen || !printable(s) || seen[s] {
				t.Fatalf("body %q: accepted spot label %q", body, s)
			}
			seen[s] = true
		}
	})
}

// FuzzHoldBody feeds POST /v1/reservations bodies through decode, the
// body's conversion and booking's checks: no panic, every refusal a 4xx, and
// an accepted hold is a window of at least a microsecond in UTC.
func FuzzHoldBody(f *testing.F) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, s := range []string{
		`{"lot_id":"11111111-1111-4111-8111-111111111111","plate":"B-AB 123","starts_at":"2026-11-25T10:00:00Z","ends_at":"2026-11-25T12:00:00Z"}`,
		`{"lot_id":"11111111-1111-4111-8111-111111111111","plate":"MÜ-AB 12","starts_at":"2026-11-25T10:00:00+01:00","ends_at":"2026-11-25T10:00:00.000001+01:00","spot_id":"A1"}`,
		`{"lot_id":"{11111111-1111-4111-8111-111111111111}","plate":"x","starts_at":"0001-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59Z"}`,
		`{"lot_id":"l","plate":"AB12","starts_at":"2026-11-25T10:00:00Z","ends_at":"2026-11-25T10:00:00.0000001Z"}`,
		`{"lot_id":"l","plate":"AB12","starts_at":"yesterday","ends_at":null}`,
		`{"lot_id":7}`, `{"plate":"AB12","unknown":1}`, `{} []`, `"x"`, ``, `{"lot_id":"\u0000"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var b holdBody
		if err := decode(fuzzRequest(body), &b); err != nil {
			refusedAsClientError(t, body, err)
			return
		}
		req, err := b.request()
		if err == nil {
			err = req.Validate(now)
		}
		if err != nil {
			refusedAsClientError(t, body, err)
			return
		}
		switch {
		case req.LotID == "" || req.Plate == "":
			t.Fatalf("body %q: accepted %+v", body, req)
		case !req.StartsAt.Before(req.EndsAt) || req.StartsAt.Location() != time.UTC || req.EndsAt.Location() != time.UTC:
			t.Fatalf("body %q: accepted window %v – %v", body, req.StartsAt, req.EndsAt)
		case req.StartsAt.Nanosecond()%1000 != 0 || req.EndsAt.Nanosecond()%1000 != 0:
			t.Fatalf("body %q: window %v – %v finer than Postgres keeps", body, req.StartsAt, req.EndsAt)
		}
	})
}

// printable is the input rule for names and labels: no NUL, no control
// characters, no ANSI escapes (finding 1 of issue 13).
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}
