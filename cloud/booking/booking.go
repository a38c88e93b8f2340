package booking

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/bulkhead"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Service is the reservation service.
type Service struct {
	Store    cloud.Store
	Payments cloud.Payments    // nil: holds carry no payment session (tests, benchmarks)
	Guard    cloud.Guard       // nil: no Redis
	Permits  cloud.PermitStore // nil: the permit and presence-reset calls answer unavailable
	// Changed, when set, hears of every committed change the edges hear
	// of (one in the lot's change log), with its lot, after the commit:
	// parkcloud wakes its outbox relay with it. Silent changes (migration
	// 021) are not told.
	Changed func(lotID string)
	// DecodeLegacy, when set, reads a payment event the bus recorded in the
	// previous release's format (the provider's raw event); see
	// HandleMessage.
	DecodeLegacy func(payload []byte) (cloud.PaymentEvent, error)
	Log          *slog.Logger
	HoldTTL      time.Duration
	// Lease is how long a request may hold its idempotency key in flight
	// before a retry is allowed to take over; longer than any hold request.
	Lease time.Duration
	Now   func() time.Time

	// LotConcurrency bounds the holds of one lot in flight in this
	// replica at once, and LotWait how long a request waits for its turn
	// before it is told to come back (429). A lot's holds are written a
	// batch at a time on one connection (holdGroup), but around the write a
	// request may read its key, hand off to Stripe and store its answer:
	// without this bulkhead a surge on one lot would fill the connection
	// pool with those and starve every other lot. It is also the most a
	// batch can carry (default 8, as the API's own per-lot bulkhead).
	// Read when the first hold is made.
	LotConcurrency int
	LotWait        time.Duration

	busyOnce sync.Once
	busy     bulkhead.PerKey

	// LotTTL is how long a lot read from the store is used before it is
	// read again, in the background (default 10s): its operator may change
	// it (PATCH), and another replica's change reaches this one's cache
	// only this way. A hold never pays for a stale rate or books a closed
	// lot: the store checks both under the lot's lock (HoldParams.Rate).
	// What a stale entry may still do, for about this long, is price an
	// extension or an overstay at the rate before a change, and refuse a
	// hold on a closed lot known full as no_availability rather than
	// lot_closed.
	LotTTL time.Duration

	lotsMu sync.RWMutex
	lots   map[string]cachedLot
	holds  map[string]*groupcommit.Group[cloud.HoldParams, written]
	// calm carries the holds of lots in no rush to the store together,
	// several lots' in one transaction (writeHolds).
	calm     groupcommit.Group[cloud.HoldParams, cloud.HoldOutcome]
	hotLots  lotMarks // until when a lot is in a rush (markHot)
	fullLots lotMarks // until when a lot that answered a window full stays off the leased path (markFullSeen)
	// keyChecks asks the store whether keys are known for the full-lot
	// fast path, the keys of concurrent requests in one read.
	keyChecks groupcommit.Group[string, bool]
}

// New returns a service with defaults filled in.
func New(store cloud.Store, payments cloud.Payments, guard cloud.Guard, log *slog.Logger, holdTTL time.Duration) *Service {
	if log == nil {
		log = slog.Default()
	}
	if holdTTL <= 0 {
		holdTTL = 10 * time.Minute
	}
	s := &Service{Store: store, Payments: payments, Guard: guard, Log: log, HoldTTL: holdTTL,
		Lease: 30 * time.Second, Now: time.Now, lots: map[string]cachedLot{}, LotTTL: 10 * time.Second,
		holds:          map[string]*groupcommit.Group[cloud.HoldParams, written]{},
		LotConcurrency: 8, LotWait: 250 * time.Millisecond}
	s.keyChecks = groupcommit.Group[string, bool]{Write: store.KnownKeys, MaxWriters: 2, Timeout: 5 * time.Second}
	s.calm = groupcommit.Group[cloud.HoldParams, cloud.HoldOutcome]{MaxBatch: calmBatch, MaxWriters: calmWriters,
		Backlog: calmBatch,
		Write: func(ctx context.Context, ps []cloud.HoldParams) ([]cloud.HoldOutcome, error) {
			calmBatchHolds.Observe(float64(len(ps)))
			return s.Store.Holds(ctx, ps), nil
		}}
	return s
}

var (
	lotBusy = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_lot_busy_total", Help: "Hold requests turned away because their lot had too many in flight."})
	calmHoldsAlone = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_calm_holds_alone_total",
		Help: "Calm lots' holds made again alone because another transaction held their lot when their shared transaction reached it."})
	// How many calm lots' holds share a transaction: its fixed cost (round
	// trip, commit) is most of a single hold's, so fewer holds per
	// transaction is more of Postgres' CPU per hold.
	calmBatchHolds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "parkgate_calm_batch_holds",
		Help:    "Holds of calm lots written in one shared transaction.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16}})
	holdsCreated = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_holds_created_total", Help: "PENDING holds created."})
	sessionsDiscarded = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_checkout_sessions_discarded_total",
		Help: "Checkout Sessions made before a hold that was then not made (no spot, key in use, lot closed), expired unused."})
	holdConflicts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_hold_conflicts_total", Help: "Hold requests refused, by code."}, []string{"code"})
	idempotentReplays = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_idempotent_replays_total", Help: "Replayed responses, by source (redis, postgres)."}, []string{"source"})
	transitions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_reservation_transitions_total", Help: "Reservation status changes, by new status."}, []string{"to"})
	providerDeferred = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_provider_work_deferred_total",
		Help: "Reservations held back from a worker's queue after the payment provider refused their work, by work."}, []string{"work"})
)

// enter takes a turn at the lot's bulkhead; the returned func gives it back.
func (s *Service) enter(ctx context.Context, lotID string) (func(), error) {
	s.busyOnce.Do(func() { s.busy.Cap, s.busy.Wait = s.LotConcurrency, s.LotWait })
	leave, ok := s.busy.Enter(ctx, lotID)
	if ok {
		return leave, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lotBusy.Inc()
	return nil, cloud.Errorf(cloud.ERateLimited, "this lot is in high demand; retry in a moment with the same Idempotency-Key")
}

// Reservation returns a reservation by id; an extension's own row is no
// reservation (not_found).
func (s *Service) Reservation(ctx context.Context, id string) (cloud.Reservation, error) {
	r, err := s.Store.Reservation(ctx, id)
	if err == nil && r.ExtendsID != "" {
		return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "reservation %q not found", id)
	}
	return r, err
}

// invalidate tells the cache and the relay that lots changed.
func (s *Service) invalidate(ctx context.Context, lotIDs ...string) {
	s.invalidateSilent(ctx, lotIDs...)
	if s.Changed != nil {
		for _, id := range lotIDs {
			s.Changed(id)
		}
	}
}

// invalidateSilent tells the cache alone, after a silent change: one that
// moves a reservation between statuses none of which opens a gate (a
// PENDING hold ending, a lapsed one refunded), which the store keeps out of
// the lot's change log (migration 021). Waking the relay for it would be a
// claim that finds nothing.
func (s *Service) invalidateSilent(ctx context.Context, lotIDs ...string) {
	if s.Guard != nil && len(lotIDs) > 0 {
		s.Guard.InvalidateLot(ctx, lotIDs...)
	}
}
