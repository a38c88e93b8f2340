package traffic

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/parkgate/parkgate/sim"
)

// Payments is the Stripe stand-in as a driver at the checkout page uses it.
type Payments interface {
	// Pay completes the session and returns the payment intent id.
	Pay(sessionID string) (string, error)
}

// WebhookHolder is the network between Stripe and the cloud.
type WebhookHolder interface {
	HoldUntil(sessionID string, t time.Time)
	PaidSeen(sessionID string) time.Time
}

// Pins drives and reads an edge's fake pins.
type Pins interface {
	Set(ctx context.Context, name string, high bool) error
	// Rising returns the rising edges recorded on each output pin since the
	// last call, by pin name.
	Rising(ctx context.Context) (map[string][]time.Time, error)
}

// Uplink tells whether a lot's link to the broker is cut.
type Uplink interface{ IsCut() bool }

// Lot is a lot as the traffic sees it.
type Lot struct {
	sim.Lot
	Lat, Lng float64
	Pins     Pins   // nil: no fake pins (no loop detector, no barrier timing)
	Uplink   Uplink // nil: never cut
}

// Config is what the world needs.
type Config struct {
	CloudURL string
	Lots     []Lot
	Payments Payments
	Webhooks WebhookHolder
	// EarlyGrace and ExitGrace are the edges' policy, which drivers keep
	// to (or break on purpose); Pulse is the barrier's open time, which a
	// car needs to drive through.
	EarlyGrace, ExitGrace, Pulse time.Duration
	Noise                        Noise
	Seed                         uint64
	// Start is the run's time zero; plans are offsets from it.
	Start time.Time
	// LossyCloudURL reaches the cloud through a network that delivers
	// requests but loses their answers (NetworkLostAnswer).
	LossyCloudURL string
	// HTTP is the transport of every driver's and camera's requests.
	HTTP *http.Client
	// AdminToken is the operator's, who makes and revokes permits and
	// resets presence.
	AdminToken string
}

// World runs the drivers of a run.
type World struct {
	cfg    Config
	http   *http.Client
	ledger *Ledger

	lanesMu sync.Mutex
	lanes   map[string]*lane

	// pinsMu serialises taking a lot's recorded edges (each take empties
	// the agent's record); rising holds what was taken, by "lot id/pin".
	pinsMu sync.Mutex
	rising map[string][]time.Time
}

// New makes a world for the planned journeys (Driver, Plate and Plan set).
func New(cfg Config, journeys []sim.Journey) *World {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}
	}
	if cfg.Pulse <= 0 {
		cfg.Pulse = 300 * time.Millisecond
	}
	return &World{cfg: cfg, http: cfg.HTTP, ledger: NewLedger(journeys),
		lanes: map[string]*lane{}, rising: map[string][]time.Time{}}
}

// Ledger is the world's record.
func (w *World) Ledger() *Ledger { return w.ledger }

// Run plays every journey and returns when all are over or ctx ends.
func (w *World) Run(ctx context.Context) {
	pinCtx, stopPins := context.WithCancel(context.Background())
	var pinWG sync.WaitGroup
	pinWG.Add(1)
	go func() { defer pinWG.Done(); w.recordPins(pinCtx) }()

	var wg sync.WaitGroup
	n := len(w.ledger.journeys)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.drive(ctx, i)
		}()
	}
	wg.Wait()
	stopPins()
	pinWG.Wait()
	w.takePins(context.Background())
	w.finish()
}

// finish fills in what the world learns only at the end: when each payment
// reached the cloud, and which barrier edge answered each open.
func (w *World) finish() {
	if w.cfg.Webhooks != nil {
		for i := range w.ledger.journeys {
			w.ledger.Update(i, func(j *sim.Journey) {
				if j.SessionID != "" && j.Paid() {
					j.WebhookAt = w.cfg.Webhooks.PaidSeen(j.SessionID)
				}
			})
		}
	}
	w.pinsMu.Lock()
	edges := map[string][]time.Time{}
	for _, l := range w.cfg.Lots {
		for _, g := range append(append([]string(nil), l.Entry...), l.Exit...) {
			es := append([]time.Time(nil), w.rising[l.ID+"/"+g+".barrier"]...)
			sort.Slice(es, func(a, b int) bool { return es[a].Before(es[b]) })
			edges[l.ID+"/"+g] = es
		}
	}
	w.pinsMu.Unlock()
	w.ledger.mu.Lock()
	MatchBarriers(w.ledger.reads, edges)
	w.ledger.mu.Unlock()
}
