package httpapi

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var lotGateRefused = promauto.NewCounter(prometheus.CounterOpts{
	Name: "parkgate_lot_gate_refused_total",
	Help: "Hold requests answered 429 at once because their lot had LotInFlight requests in this replica.",
})

// lotGate bounds the hold requests of one lot inside this replica at once,
// counted from the moment the body names the lot, before any rate-limit,
// cache or database call. A stadium rush of a thousand requests at once
// then costs a thousand body decodes and at most cap requests' worth of
// Redis and Postgres round trips; the rest are told to come back (429)
// without touching anything another lot needs. The service's own bulkhead
// (booking.Service.LotConcurrency) bounds the holds of a lot in the
// database; this bounds everything in front of it.
type lotGate struct {
	cap int

	mu sync.Mutex
	n  map[string]int
}

// enter takes a place for lotID; ok is false when the lot is at its cap.
func (g *lotGate) enter(lotID string) (leave func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = make(map[string]int)
	}
	if g.n[lotID] >= g.cap {
		return nil, false
	}
	g.n[lotID]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.n[lotID]--; g.n[lotID] == 0 {
			delete(g.n, lotID) // lots come and go: keep the map to those in flight
		}
	}, true
}
