package booking

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Checkout asks the payment provider for a hosted payment page.
type Checkout struct {
	ReservationID  string
	LotID          string
	Description    string
	Amount         int64
	Currency       string
	ExpiresAt      time.Time
	IdempotencyKey string
}

// Session is a hosted payment page.
type Session struct {
	ID  string
	URL string
}

// ErrSessionCompleted is what Payments.ExpireSession returns (wrapped or
// not) when the session was paid before it could be expired.
var ErrSessionCompleted = errors.New("booking: checkout session already completed")

// Payments is the payment provider (Stripe). Every call takes an
// idempotency key so that a retry after a crash never charges or refunds
// twice.
type Payments interface {
	// CreateCheckoutSession returns the session for the key, creating it once.
	CreateCheckoutSession(ctx context.Context, c Checkout) (Session, error)
	// ExpireSession stops the session from taking money; nil when it is
	// expired (now or before), ErrSessionCompleted when it was paid.
	ExpireSession(ctx context.Context, sessionID, idempotencyKey string) error
	// Refund returns a payment in full and the refund's id.
	Refund(ctx context.Context, paymentIntentID, idempotencyKey string) (string, error)
}

// StoredResponse is a response kept under an idempotency key.
type StoredResponse struct {
	RequestHash []byte
	Status      int
	Body        []byte
}

// Guard is the Redis hot-lot guard: a lock that cuts contention, a fast path
// for idempotent replays and an availability cache to keep right. Each call
// must degrade to a no-op when Redis is away; correctness never depends on it.
type Guard interface {
	Lock(ctx context.Context, lotID string, start, end time.Time) (release func(), err error)
	SaveResponse(ctx context.Context, key string, r StoredResponse)
	InvalidateLot(ctx context.Context, lotIDs ...string)
	// Peek reads, in one round trip, the response stored under key (ok
	// false when there is none or Redis cannot say) and, when availability
	// is true, whether the availability cache knows the window to be full,
	// with a function that records the window full (nil without). The
	// function remembers the cache's state now, so a change committed
	// before it is called leaves the record unreachable rather than wrong.
	Peek(ctx context.Context, key, lotID string, start, end time.Time, availability bool) (stored StoredResponse, ok, full bool, markFull func(total int))
}

// Limits of what a driver may book.
const (
	// ClockSkew is how far in the past a window may start: a phone's clock
	// and a slow network should not turn "now" into an error.
	ClockSkew = 5 * time.Minute
	// MaxWindow is the longest booking.
	MaxWindow = 30 * 24 * time.Hour
	// MaxAdvance is how far ahead a booking may start.
	MaxAdvance = 366 * 24 * time.Hour
	// MaxKeyLen bounds an Idempotency-Key.
	MaxKeyLen = 255
)

// Service is the reservation service.
type Service struct {
	DB       *postgres.DB
	Payments Payments // nil: holds carry no payment session (tests, benchmarks)
	Guard    Guard    // nil: no Redis
	// Changed, when set, hears of every committed change with its lot,
	// after the commit: parkcloud wakes its outbox relay with it.
	Changed func(lotID string)
	Log     *slog.Logger
	HoldTTL time.Duration
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
	// batch can carry (default 8, as the API's own lot gate).
	LotConcurrency int
	LotWait        time.Duration

	lotsMu sync.RWMutex
	lots   map[string]cloud.Lot // lots never change once made: cache them
	gates  map[string]chan struct{}
	holds  map[string]*groupcommit.Group[postgres.HoldParams, postgres.HoldOutcome]
	// keyChecks asks Postgres whether keys are known for the full-lot fast
	// path, the keys of concurrent requests in one read.
	keyChecks groupcommit.Group[string, bool]
}

var lotBusy = promauto.NewCounter(prometheus.CounterOpts{
	Name: "parkgate_lot_busy_total", Help: "Hold requests turned away because their lot had too many in flight."})

// enter takes a turn at the lot's bulkhead; the returned func gives it back.
func (s *Service) enter(ctx context.Context, lotID string) (func(), error) {
	s.lotsMu.Lock()
	g, ok := s.gates[lotID]
	if !ok {
		g = make(chan struct{}, s.LotConcurrency)
		s.gates[lotID] = g
	}
	s.lotsMu.Unlock()
	t := time.NewTimer(s.LotWait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return func() { <-g }, nil
	case <-t.C:
		lotBusy.Inc()
		return nil, cloud.Errorf(cloud.ERateLimited, "this lot is in high demand; retry in a moment with the same Idempotency-Key")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// holdGroup is the lot's queue of holds to write: the requests of one lot
// that arrive while its previous holds are being written go together, in
// one transaction (postgres.DB.Holds). They would take turns on the lot's
// row anyway, each waiting for the one before to commit; a surge on one lot
// thus costs one commit per batch, not one per driver.
func (s *Service) holdGroup(lotID string) *groupcommit.Group[postgres.HoldParams, postgres.HoldOutcome] {
	s.lotsMu.RLock()
	g, ok := s.holds[lotID]
	s.lotsMu.RUnlock()
	if ok {
		return g
	}
	s.lotsMu.Lock()
	defer s.lotsMu.Unlock()
	if g, ok = s.holds[lotID]; !ok {
		g = &groupcommit.Group[postgres.HoldParams, postgres.HoldOutcome]{
			Write: func(ctx context.Context, batch []postgres.HoldParams) ([]postgres.HoldOutcome, error) {
				return s.writeHolds(ctx, lotID, batch), nil
			},
			MaxBatch:   64,
			MaxWriters: 1, // a second writer would only wait for the first's row lock
		}
		s.holds[lotID] = g
	}
	return g
}

// writeHolds writes one batch of a lot's holds under the Redis lock of the
// lot and the windows the batch spans: one lock for the batch, taken once.
// The lot's cached availability is invalidated once for the batch, before
// any of its callers is answered; the lock is released without making them
// wait for it.
func (s *Service) writeHolds(ctx context.Context, lotID string, batch []postgres.HoldParams) []postgres.HoldOutcome {
	var release func()
	if s.Guard != nil {
		start, end := batch[0].StartsAt, batch[0].EndsAt
		for _, p := range batch[1:] {
			if p.StartsAt.Before(start) {
				start = p.StartsAt
			}
			if p.EndsAt.After(end) {
				end = p.EndsAt
			}
		}
		// The lock only spreads a surge out; when it is busy past its wait,
		// or Redis is away, go on: the lot row lock in Postgres orders the
		// writers and the exclusion constraint keeps them honest.
		if r, err := s.Guard.Lock(ctx, lotID, start, end); err == nil {
			release = r
		}
	}
	out := s.DB.Holds(ctx, batch)
	if release != nil {
		go release()
	}
	for _, o := range out {
		if o.Err == nil && o.Outcome == postgres.HoldHeld {
			s.invalidate(ctx, lotID)
			break
		}
	}
	return out
}

// New returns a service with defaults filled in.
func New(db *postgres.DB, payments Payments, guard Guard, log *slog.Logger, holdTTL time.Duration) *Service {
	if log == nil {
		log = slog.Default()
	}
	if holdTTL <= 0 {
		holdTTL = 10 * time.Minute
	}
	s := &Service{DB: db, Payments: payments, Guard: guard, Log: log, HoldTTL: holdTTL,
		Lease: 30 * time.Second, Now: time.Now, lots: map[string]cloud.Lot{}, gates: map[string]chan struct{}{},
		holds:          map[string]*groupcommit.Group[postgres.HoldParams, postgres.HoldOutcome]{},
		LotConcurrency: 8, LotWait: 250 * time.Millisecond}
	s.keyChecks = groupcommit.Group[string, bool]{Write: db.KnownKeys, MaxWriters: 2, Timeout: 5 * time.Second}
	return s
}

var (
	holdsCreated = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parkgate_holds_created_total", Help: "PENDING holds created."})
	holdConflicts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_hold_conflicts_total", Help: "Hold requests refused, by code."}, []string{"code"})
	idempotentReplays = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_idempotent_replays_total", Help: "Replayed responses, by source (redis, postgres)."}, []string{"source"})
	transitions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_reservation_transitions_total", Help: "Reservation status changes, by new status."}, []string{"to"})
)

func allow(ctx context.Context, limit func(context.Context) error) error {
	if limit == nil {
		return nil
	}
	return limit(ctx)
}

// cachedLot returns a lot this replica has read before.
func (s *Service) cachedLot(id string) (cloud.Lot, bool) {
	s.lotsMu.RLock()
	defer s.lotsMu.RUnlock()
	l, ok := s.lots[id]
	return l, ok
}

// Lot returns a lot, from the cache when it has been read before.
func (s *Service) Lot(ctx context.Context, id string) (cloud.Lot, error) {
	if l, ok := s.cachedLot(id); ok {
		return l, nil
	}
	l, err := s.DB.Lot(ctx, id)
	if err != nil {
		return l, err
	}
	s.lotsMu.Lock()
	s.lots[id] = l
	s.lotsMu.Unlock()
	return l, nil
}

// HoldRequest is the body of POST /v1/reservations.
type HoldRequest struct {
	LotID    string    `json:"lot_id"`
	Plate    string    `json:"plate"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	SpotID   string    `json:"spot_id,omitempty"`
}

// Response is an HTTP answer the service made and may have to repeat byte
// for byte.
type Response struct {
	Status   int
	Body     []byte
	Replayed bool
}

// Validate normalises the request and checks it; errors name the field.
func (r *HoldRequest) Validate(now time.Time) error {
	if r.LotID == "" {
		return cloud.FieldError("lot_id", "lot_id is required")
	}
	if r.Plate == "" {
		return cloud.FieldError("plate", "plate is required")
	}
	p, err := protocol.NormalizePlate(r.Plate)
	if err != nil {
		return cloud.FieldError("plate", "plate must be 2 to 10 letters and digits")
	}
	r.Plate = p
	// Postgres keeps microseconds: so does the request, before it is
	// checked (two instants a nanosecond apart would pass as a window and
	// reach the database as an empty one), and so that what is answered now
	// and what is rebuilt from the row later are the same.
	r.StartsAt, r.EndsAt = r.StartsAt.UTC().Truncate(time.Microsecond), r.EndsAt.UTC().Truncate(time.Microsecond)
	switch {
	case r.StartsAt.IsZero():
		return cloud.FieldError("starts_at", "starts_at is required (RFC 3339)")
	case r.EndsAt.IsZero():
		return cloud.FieldError("ends_at", "ends_at is required (RFC 3339)")
	case !r.StartsAt.Before(r.EndsAt):
		return cloud.FieldError("ends_at", "ends_at must be after starts_at")
	case r.StartsAt.Before(now.Add(-ClockSkew)):
		return cloud.FieldError("starts_at", "starts_at is in the past")
	case r.EndsAt.Sub(r.StartsAt) > MaxWindow:
		return cloud.FieldError("ends_at", "a booking may last at most %s", MaxWindow)
	case r.StartsAt.After(now.Add(MaxAdvance)):
		return cloud.FieldError("starts_at", "starts_at is more than a year ahead")
	}
	return nil
}

// hash identifies a request's meaning, so that the same booking sent with
// other whitespace, field order or plate spelling counts as the same body.
func (r *HoldRequest) hash() []byte {
	h := sha256.New()
	for _, f := range []string{r.LotID, r.Plate, r.SpotID} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(r.StartsAt.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], uint64(r.EndsAt.UnixNano()))
	h.Write(b[:])
	return h.Sum(nil)
}

var (
	errNoAvailability = cloud.Errorf(cloud.ENoAvailability, "no spot is free for the whole window")
	// noAvailabilityBody is the 409 stored under a key, made once.
	noAvailabilityBody = cloud.MarshalError(errNoAvailability)
)

// Limits are a caller's rate limits, each returning the error to answer
// with when it refuses; nil allows all.
type Limits struct {
	Client, Lot func(context.Context) error
}

// Hold makes a PENDING hold for a driver, exactly once per idempotency key.
// It returns the response to send (201 with the reservation, or a stored
// answer replayed), or an error for answers that are not stored: invalid
// input, a key in use or reused with another body, the provider away, or a
// limit's.
//
// One Redis round trip first asks for both a response stored under the key
// and whether the lot is known full for the window. A replay costs nothing
// more, and is not limited: refusing it would leave the driver without the
// hold the first attempt made. A lot known full answers 409 at once (after
// a read of the key in Postgres, shared with the requests asking at the same
// moment), without queueing for the lot and without its limits: a driver in
// a rush learns there is no spot and stops, rather than being told to come
// back to learn it. Everything else that costs the database asks the
// client's limit first and, before it queues for the lot, the lot's: a lot
// this replica has not seen yet is read from Postgres only after the
// client's limit. A retry of a request that got in is not limited either.
func (s *Service) Hold(ctx context.Context, key string, req HoldRequest, limits Limits) (Response, error) {
	if key == "" {
		return Response{}, cloud.Errorf(cloud.EIdempotencyMiss, "the Idempotency-Key header is required")
	}
	if len(key) > MaxKeyLen {
		return Response{}, &cloud.Error{Code: cloud.EInvalid, Field: "Idempotency-Key", Message: "Idempotency-Key is longer than 255 characters"}
	}
	if err := req.Validate(s.Now()); err != nil {
		return Response{}, err
	}
	hash := req.hash()

	lot, known := s.cachedLot(req.LotID)
	var full bool
	var markFull func(int)
	if s.Guard != nil {
		// Availability only for a lot known to exist (a lookup makes keys
		// in Redis) and a request for any spot: a window full in the cache
		// is full for any spot, and the others ask Postgres which spot is
		// free.
		var stored StoredResponse
		var ok bool
		stored, ok, full, markFull = s.Guard.Peek(ctx, key, req.LotID, req.StartsAt, req.EndsAt, known && req.SpotID == "")
		if ok {
			if string(stored.RequestHash) != string(hash) {
				return Response{}, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another request")
			}
			idempotentReplays.WithLabelValues("redis").Inc()
			return Response{Status: stored.Status, Body: stored.Body, Replayed: true}, nil
		}
	}
	if !known {
		if err := allow(ctx, limits.Client); err != nil {
			return Response{}, err
		}
		var err error
		if lot, err = s.Lot(ctx, req.LotID); err != nil {
			if cloud.ErrorCode(err) == cloud.ENotFound {
				return Response{}, &cloud.Error{Code: cloud.ENotFound, Field: "lot_id", Message: cloud.ErrorMessage(err)}
			}
			return Response{}, err
		}
	}

	retry := false
	if full {
		// A lot known full answers 409 at once, unless this is a retry of
		// a request that got in before the lot filled, whose answer Redis
		// did not have: an indexed read, no lock, shared with the requests
		// asking at the same moment, tells. Nothing is stored under the
		// key for the quick 409, so a retry asks again and may find a spot
		// that came free.
		seen, err := s.keyChecks.Do(ctx, key)
		if err == nil && !seen {
			holdConflicts.WithLabelValues(cloud.ENoAvailability).Inc()
			return Response{}, errNoAvailability
		}
		retry = seen
	}
	if !retry {
		if known { // else asked above, before the lot was read
			if err := allow(ctx, limits.Client); err != nil {
				return Response{}, err
			}
		}
		if err := allow(ctx, limits.Lot); err != nil {
			return Response{}, err
		}
	}

	leave, err := s.enter(ctx, lot.ID)
	if err != nil {
		return Response{}, err
	}
	defer leave()

	// Two rounds at most: the second only when a stale key was found whose
	// hold has lapsed, and was deleted so this request can start afresh.
	for range 2 {
		resp, again, err := s.hold(ctx, key, hash, lot, req, markFull)
		if !again {
			return resp, err
		}
	}
	return Response{}, cloud.Errorf(cloud.EIdempotencyInUse, "a request with this Idempotency-Key is in progress")
}

// hold makes one attempt; markFull, when not nil, records in the cache
// that the window is full.
func (s *Service) hold(ctx context.Context, key string, hash []byte, lot cloud.Lot, req HoldRequest, markFull func(int)) (resp Response, again bool, err error) {
	id := uuid.NewString()
	price := cloud.Price(lot.HourlyRate, req.StartsAt, req.EndsAt)
	// Without a payment provider the hold is the whole answer: its key is
	// stored done in the same transaction, one round trip in all.
	final := 0
	if s.Payments == nil {
		final = http.StatusCreated
	}
	out, err := s.holdGroup(lot.ID).Do(ctx, postgres.HoldParams{
		ID: id, LotID: lot.ID, SpotID: req.SpotID, Plate: req.Plate,
		StartsAt: req.StartsAt, EndsAt: req.EndsAt, HoldTTL: s.HoldTTL, Price: price,
		Key: key, RequestHash: hash, Lease: s.Lease, ConflictBody: noAvailabilityBody,
		FinalStatus: final,
	})
	if err == nil {
		err = out.Err
	}
	if err != nil {
		return Response{}, false, err
	}
	res := out.HoldResult
	switch res.Outcome {
	case postgres.HoldKeyExists:
		return s.existingKey(ctx, key, hash, lot, req)
	case postgres.HoldUnknownSpot:
		holdConflicts.WithLabelValues(cloud.EInvalid).Inc()
		return Response{}, false, cloud.FieldError("spot_id", "lot has no spot %q", req.SpotID)
	case postgres.HoldNoAvailability:
		holdConflicts.WithLabelValues(cloud.ENoAvailability).Inc()
		if markFull != nil {
			markFull(lot.TotalSpots)
		}
		resp := Response{Status: http.StatusConflict, Body: noAvailabilityBody}
		s.saveResponse(ctx, key, hash, resp)
		return resp, false, nil
	case postgres.HoldHeld:
	default:
		return Response{}, false, fmt.Errorf("hold: unexpected outcome %q", res.Outcome)
	}
	holdsCreated.Inc() // and the batch's writer has invalidated the lot
	r := cloud.Reservation{
		ID: id, Status: cloud.StatusPending, LotID: lot.ID, SpotID: res.SpotID, Plate: req.Plate,
		StartsAt: req.StartsAt, EndsAt: req.EndsAt, HoldExpiresAt: res.HoldExpiresAt, Price: price,
		CreatedAt: res.CreatedAt, UpdatedAt: res.CreatedAt,
	}
	if final != 0 {
		body, err := holdBody(r)
		if err != nil {
			return Response{}, false, err
		}
		resp := Response{Status: final, Body: body}
		s.saveResponse(ctx, key, hash, resp)
		return resp, false, nil
	}
	resp, err = s.handOff(ctx, key, hash, lot, r)
	return resp, false, err
}

// handOff creates the Checkout Session of a fresh hold (or finds it again,
// through the provider's idempotency, when resuming a crashed request) and
// stores the final response under the key.
func (s *Service) handOff(ctx context.Context, key string, hash []byte, lot cloud.Lot, r cloud.Reservation) (Response, error) {
	if s.Payments != nil {
		sess, err := s.Payments.CreateCheckoutSession(ctx, Checkout{
			ReservationID: r.ID, LotID: lot.ID,
			Description: fmt.Sprintf("Parking at %s, %s to %s", lot.Name,
				r.StartsAt.Format(time.RFC3339), r.EndsAt.Format(time.RFC3339)),
			Amount: r.Price.Amount, Currency: r.Price.Currency, ExpiresAt: r.HoldExpiresAt,
			IdempotencyKey: "parkgate-checkout-" + r.ID,
		})
		if err != nil {
			s.Log.Warn("checkout session failed; releasing hold", "reservation", r.ID, "err", err)
			if aerr := s.DB.AbandonHold(context.WithoutCancel(ctx), r.ID, key); aerr != nil {
				// The lease on the key runs out and the hold expires: the
				// spot comes back either way, only later.
				s.Log.Error("release hold", "reservation", r.ID, "err", aerr)
			} else {
				s.invalidate(ctx, lot.ID)
			}
			holdConflicts.WithLabelValues(cloud.EUnavailable).Inc()
			return Response{}, &cloud.Error{Code: cloud.EUnavailable, Message: "the payment provider cannot be reached; retry with the same Idempotency-Key"}
		}
		r.Payment = &cloud.Payment{Provider: "stripe", SessionID: sess.ID, URL: sess.URL}
	}
	body, err := holdBody(r)
	if err != nil {
		return Response{}, err
	}
	var sid, surl string
	if r.Payment != nil {
		sid, surl = r.Payment.SessionID, r.Payment.URL
	}
	if err := s.DB.FinishHold(ctx, r.ID, sid, surl, key, http.StatusCreated, body); err != nil {
		return Response{}, err
	}
	resp := Response{Status: http.StatusCreated, Body: body}
	s.saveResponse(ctx, key, hash, resp)
	return resp, nil
}

// holdBody is the 201 body of a hold: the reservation as it was made,
// PENDING and never updated, whatever has happened to it since. A replay
// rebuilds it from the row; only columns that never change go in, so the
// rebuilt body is the first one byte for byte.
func holdBody(r cloud.Reservation) ([]byte, error) {
	r.Status = cloud.StatusPending
	r.UpdatedAt = r.CreatedAt
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode reservation: %w", err)
	}
	return body, nil
}

func (s *Service) saveResponse(ctx context.Context, key string, hash []byte, r Response) {
	if s.Guard != nil {
		s.Guard.SaveResponse(ctx, key, StoredResponse{RequestHash: hash, Status: r.Status, Body: r.Body})
	}
}

// existingKey answers a request whose key is already stored: replay, refuse,
// or take over from a first attempt that died in flight.
func (s *Service) existingKey(ctx context.Context, key string, hash []byte, lot cloud.Lot, req HoldRequest) (Response, bool, error) {
	rec, ok, err := s.DB.IdempotencyKey(ctx, key)
	if err != nil {
		return Response{}, false, err
	}
	if !ok {
		return Response{}, true, nil // purged in between: start afresh
	}
	if string(rec.RequestHash) != string(hash) {
		return Response{}, false, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another request")
	}
	if rec.Done() {
		body := rec.ResponseBody
		if len(body) == 0 {
			// Stored done by the hold itself: the body is the
			// reservation as it was made.
			r, err := s.DB.Reservation(ctx, rec.ReservationID)
			if err != nil {
				return Response{}, false, err
			}
			if body, err = holdBody(r); err != nil {
				return Response{}, false, err
			}
		}
		idempotentReplays.WithLabelValues("postgres").Inc()
		s.saveResponse(ctx, key, hash, Response{Status: rec.ResponseStatus, Body: body})
		return Response{Status: rec.ResponseStatus, Body: body, Replayed: true}, false, nil
	}
	took, err := s.DB.TakeOverKey(ctx, key, s.Lease)
	if err != nil {
		return Response{}, false, err
	}
	if !took {
		return Response{}, false, cloud.Errorf(cloud.EIdempotencyInUse, "a request with this Idempotency-Key is in progress")
	}
	// The first attempt died after making its hold. Resume it if the hold
	// still stands; otherwise start over with a new hold.
	r, err := s.DB.Reservation(ctx, rec.ReservationID)
	if err == nil && r.Status == cloud.StatusPending && r.HoldExpiresAt.After(s.Now()) {
		resp, err := s.handOff(ctx, key, hash, lot, r)
		return resp, false, err
	}
	if err != nil && cloud.ErrorCode(err) != cloud.ENotFound {
		return Response{}, false, err
	}
	if err := s.DB.DeleteKey(ctx, key); err != nil {
		return Response{}, false, err
	}
	return Response{}, true, nil
}

// Reservation returns a reservation by id.
func (s *Service) Reservation(ctx context.Context, id string) (cloud.Reservation, error) {
	return s.DB.Reservation(ctx, id)
}
