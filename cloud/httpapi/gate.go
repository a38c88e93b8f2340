package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var lotGateRefused = promauto.NewCounter(prometheus.CounterOpts{
	Name: "parkgate_lot_gate_refused_total",
	Help: "Hold requests answered 429 because their lot had LotInFlight requests in this replica for longer than LotWait.",
})

// lotGate bounds the hold requests of one lot inside this replica at once,
// counted from the moment the body names the lot, before any rate-limit,
// cache or database call. A request over the bound waits a moment for a
// place (parked, holding nothing another lot needs) and is told to come
// back (429) if none frees up. Measured in a stadium rush of a thousand
// requests at once: without it, the hot lot's requests held most of the
// Postgres pool (each full-lot answer needed an idempotency read, before
// those were batched) and the other lots' holds queued behind them for a
// connection. It also paces the rush so that most of it asks once the lot
// is known full, and is told 409 at once: with 32 places instead of 8,
// 56-101 drivers (three runs) reached the lot's rate limit first, were told 429
// and came back, and the rush lasted 2.1 s instead of 0.2 s. It comes
// before the replay lookup and the client's limit too: when the thousand
// asked Redis those first, all at once, the other lots' requests arriving
// in the rush's first 50 ms waited behind them for the CPU, 42-65 ms (four
// surges); with those asked in turn at the gate, 23-56 ms (seven). The service's
// own bulkhead (booking.Service.LotConcurrency) then bounds the holds of a
// lot in the database.
type lotGate struct {
	cap  int
	wait time.Duration

	mu    sync.Mutex
	slots map[string]*lotSlot
}

type lotSlot struct {
	sem  chan struct{}
	refs int // holders and waiters: the slot leaves the map at zero
}

// enter takes a place for lotID, waiting up to the gate's wait; ok is
// false when none came free in time or ctx ended first.
func (g *lotGate) enter(ctx context.Context, lotID string) (leave func(), ok bool) {
	g.mu.Lock()
	if g.slots == nil {
		g.slots = make(map[string]*lotSlot)
	}
	s := g.slots[lotID]
	if s == nil {
		// Keyed by the lot id as sent, before it is checked: the map holds
		// only lots with requests in flight, so made-up ids cannot grow it.
		s = &lotSlot{sem: make(chan struct{}, g.cap)}
		g.slots[lotID] = s
	}
	s.refs++
	g.mu.Unlock()

	unref := func() {
		g.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(g.slots, lotID)
		}
		g.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; unref() }, true
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; unref() }, true
	case <-t.C:
	case <-ctx.Done():
	}
	unref()
	return nil, false
}
