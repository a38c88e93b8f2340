package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

// BenchmarkRefusedHold is the cost, in the server alone, of telling one
// driver of a surge that the lot is full: the request goes to the handler
// with no network between (what HTTP costs is the floor of any request),
// through the lot's gate, the one Redis round trip that finds no replay
// and the lot known full, and the shared key check in Postgres. It is
// what a surge's 950 refusals each cost the other lots; profile it with
// -cpuprofile.
func BenchmarkRefusedHold(b *testing.B) {
	// The lot stays known full however long the benchmark runs.
	bd := setupGuarded(b, guard.Options{ClientRate: guard.Limit{Rate: 1e6, Burst: 1e6}, AvailabilityTTL: time.Hour})
	lot := bd.createLot(b, 1)
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
	body := fmt.Sprintf(`{"lot_id":%q,"plate":"HOT1","starts_at":%q,"ends_at":%q}`,
		lot, start.Format(time.RFC3339), start.Add(2*time.Hour).Format(time.RFC3339))
	h := bd.srv.Config.Handler
	post := func(k string) int {
		r := httptest.NewRequest("POST", "/v1/reservations", strings.NewReader(body))
		r.Header.Set("Idempotency-Key", k)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if c := post("first"); c != http.StatusCreated {
		b.Fatalf("first hold: %d", c)
	}
	if c := post("second"); c != http.StatusConflict { // the lot is now known full
		b.Fatalf("second hold: %d", c)
	}
	var n atomic.Int64
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c := post(fmt.Sprint("k", n.Add(1))); c != http.StatusConflict {
				b.Errorf("refused hold: %d", c)
				return
			}
		}
	})
}
