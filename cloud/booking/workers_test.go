package booking_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// failingExpiry is a store whose expiry ended some lots' holds and then
// failed on another lot, as Store.ExpireDue reports it.
type failingExpiry struct {
	cloud.Store
	ended map[string]int
	err   error
}

func (f failingExpiry) ExpireDue(context.Context) (map[string]int, error) { return f.ended, f.err }

// invalidations records what the guard was asked to forget.
type invalidations struct {
	cloud.Guard
	got [][]string
}

func (g *invalidations) InvalidateLot(_ context.Context, lotIDs ...string) {
	g.got = append(g.got, slices.Clone(lotIDs))
}

// TestExpireDueHoldsInvalidatesOnError: the lots whose holds ended have
// their cached availability forgotten, in one call, also when the expiry
// failed on another lot after them: those holds have ended, and the cache
// would show their spots taken until it ran out.
func TestExpireDueHoldsInvalidatesOnError(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	broken := errors.New("lot c: connection reset")
	store := failingExpiry{Store: s.DB, ended: map[string]int{"b": 3, "a": 1}, err: broken}
	guard := &invalidations{}
	svc := booking.New(store, nil, guard, nil, 10*time.Minute)
	n, err := svc.ExpireDueHolds(context.Background())
	if n != 4 || !errors.Is(err, broken) {
		t.Errorf("ExpireDueHolds: %d, %v; want 4 ended and the error", n, err)
	}
	if len(guard.got) != 1 || !slices.Equal(guard.got[0], []string{"a", "b"}) {
		t.Errorf("invalidated %v; want [a b] once", guard.got)
	}
}

// stuckStripe answers Checkout at once, and holds every call to expire a
// session until released: Stripe slow, or gone without a word until a
// timeout.
type stuckStripe struct {
	entered, release chan struct{}
	once             sync.Once
	waiting          atomic.Int32 // calls to expire a session now held
}

func (p *stuckStripe) CreateCheckoutSession(_ context.Context, c cloud.Checkout) (cloud.Session, error) {
	return cloud.Session{ID: "cs_" + c.ReservationID, URL: "https://pay.example/" + c.ReservationID, ExpiresAt: c.ExpiresAt}, nil
}

func (p *stuckStripe) ExpireSession(ctx context.Context, _, _ string) error {
	p.once.Do(func() { close(p.entered) })
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *stuckStripe) Refund(context.Context, string, string) (string, error) {
	return "", errors.New("stuckStripe: no refunds")
}

func (p *stuckStripe) RefundAmount(context.Context, string, int64, string) (string, error) {
	return "", errors.New("stuckStripe: no refunds")
}

// dueHold holds a spot at lot from start for an hour, with its Checkout
// Session, and ends its time: the next expiry ends it.
func dueHold(t testing.TB, svc *booking.Service, pool *pgxpool.Pool, lot, plate string, start time.Time) string {
	t.Helper()
	ctx := context.Background()
	r, err := svc.Hold(ctx, "k-"+plate, booking.HoldRequest{LotID: lot, Plate: plate, StartsAt: start, EndsAt: start.Add(time.Hour)}, booking.Limits{})
	if err != nil || r.Status != 201 {
		t.Fatalf("hold %s: %+v, %v", plate, r, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 second' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// endedHolds makes n holds with their Checkout Sessions on a lot of one
// spot, in windows apart (a hold ends the overdue holds in its window),
// and ends them all unpaid: n sessions to close.
func endedHolds(tb testing.TB, svc *booking.Service, s *pgtest.Schema, n int) {
	tb.Helper()
	ctx := context.Background()
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "Ended", TimeZone: "UTC", Spots: []string{"1"},
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Hour).UTC()
	for i := range n {
		dueHold(tb, svc, s.DB.Pool, lot.ID, fmt.Sprintf("END%d", i), start.Add(time.Duration(i)*2*time.Hour))
	}
	if ended, err := svc.ExpireDueHolds(ctx); ended != n || err != nil {
		tb.Fatalf("ExpireDueHolds = %d, %v; want %d", ended, err, n)
	}
}

// TestWorkersExpireWhileStripeStuck: holds keep ending while the worker
// that talks to Stripe waits on it. In one loop, the call held up the
// expiry of every hold behind it.
func TestWorkersExpireWhileStripeStuck(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	stripe := &stuckStripe{entered: make(chan struct{}), release: make(chan struct{})}
	svc := booking.New(s.DB, stripe, nil, nil, 10*time.Minute)
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "A", TimeZone: "UTC", Spots: []string{"1", "2"},
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	hold := func(plate string) string { return dueHold(t, svc, s.DB.Pool, lot.ID, plate, start) }
	hold("STUCK1") // its session to close is what the Stripe worker waits on

	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); svc.RunWorkers(wctx, 10*time.Millisecond) }()
	defer func() { stop(); close(stripe.release); <-done }()
	select {
	case <-stripe.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never asked Stripe to expire the session")
	}

	next := hold("STUCK2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := s.DB.Reservation(ctx, next)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == cloud.StatusExpired {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold still %s while Stripe is stuck; want EXPIRED", r.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseSessionsAFewAtOnce: the sessions of ended holds are expired at
// Stripe a few at once, never more: one at a time, Stripe's few hundred
// milliseconds a call would close about three a second.
func TestCloseSessionsAFewAtOnce(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	stripe := &stuckStripe{entered: make(chan struct{}), release: make(chan struct{})}
	svc := booking.New(s.DB, stripe, nil, nil, 10*time.Minute)
	endedHolds(t, svc, s, 6)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(stripe.release) }) }) // also when the test fails first
	type result struct {
		n   int
		err error
	}
	closed := make(chan result, 1)
	go func() {
		n, err := svc.CloseSessions(ctx, 10)
		closed <- result{n, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for stripe.waiting.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls to Stripe at once; want 4", stripe.waiting.Load())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a fifth, were it let through
	if w := stripe.waiting.Load(); w != 4 {
		t.Errorf("%d calls to Stripe at once; want 4", w)
	}
	release.Do(func() { close(stripe.release) })
	if r := <-closed; r.n != 6 || r.err != nil {
		t.Errorf("CloseSessions = %d, %v; want all 6", r.n, r.err)
	}
}

// awayStripe holds every call to expire a session until its context ends,
// but the fourth, which finds Stripe away at once. With four at once, the
// fourth call comes while the other three wait; errgroup cancels the
// pass's context before it frees the failed call's place, so no fifth
// call is sent.
type awayStripe struct {
	stuckStripe
	calls atomic.Int32
}

func (p *awayStripe) ExpireSession(ctx context.Context, _, _ string) error {
	if p.calls.Add(1) == 4 {
		return errors.New("stripe away: connection refused")
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestCloseSessionsEndsOnOutage: Stripe away ends the pass at once: the
// calls in flight are called off and the sessions not yet asked for are
// left to the next pass, not each sent to wait out the same timeout.
func TestCloseSessionsEndsOnOutage(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	stripe := &awayStripe{}
	svc := booking.New(s.DB, stripe, nil, nil, 10*time.Minute)
	endedHolds(t, svc, s, 6)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a test that fails, not hangs
	defer cancel()
	n, err := svc.CloseSessions(wctx, 10)
	if wctx.Err() != nil {
		t.Fatal("CloseSessions waited on the calls in flight after Stripe was found away")
	}
	if n != 0 || err == nil || !strings.Contains(err.Error(), "stripe away") {
		t.Errorf("CloseSessions = %d, %v; want none and the outage", n, err)
	}
	if c := stripe.calls.Load(); c != 4 {
		t.Errorf("%d calls to Stripe; want the 4 in flight, none after", c)
	}
}

// hugeOverstay is a store whose one due overstay cannot be priced: more
// minutes than any rate can be multiplied by (an older release's row).
type hugeOverstay struct {
	cloud.Store
	due cloud.DueOverstay
}

func (h hugeOverstay) DueOverstays(context.Context, int) ([]cloud.DueOverstay, error) {
	return []cloud.DueOverstay{h.due}, nil
}

// TestChargeOverstaysTooLargeToPrice: an overstay that cannot be priced is
// held back as a refused one is, not returned as an error that ends the
// pass each tick with the same overstay first.
func TestChargeOverstaysTooLargeToPrice(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "A", TimeZone: "UTC", Spots: []string{"1"},
		HourlyRate: cloud.Money{Amount: 1_000_000, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	id := "6f1c0a52-0000-4000-8000-000000000001"
	store := hugeOverstay{Store: s.DB, due: cloud.DueOverstay{ReservationID: id, LotID: lot.ID, Minutes: 1 << 62}}
	svc := booking.New(store, &stuckStripe{}, nil, nil, 10*time.Minute)
	if n, err := svc.ChargeOverstays(ctx, 10); n != 0 || err != nil {
		t.Fatalf("ChargeOverstays = %d, %v; want it held back, no error", n, err)
	}
	var attempts int
	var reason string
	if err := s.DB.Pool.QueryRow(ctx, `SELECT attempts, last_error FROM provider_retries
		WHERE work = 'overstay_session' AND reservation_id = $1`, id).Scan(&attempts, &reason); err != nil ||
		attempts != 1 || !strings.Contains(reason, "too large to price") {
		t.Errorf("held back: %d, %q, %v", attempts, reason, err)
	}
}

// keyRefusedStripe refuses every call for parkgate's key, as Stripe does
// a revoked one (401), which stripepay marks cloud.ErrProviderCredentials.
type keyRefusedStripe struct{ stuckStripe }

func (p *keyRefusedStripe) ExpireSession(context.Context, string, string) error {
	refused := &cloud.Error{Code: cloud.EPaymentProvider, Message: "the payment provider refused the request: Invalid API Key provided"}
	return fmt.Errorf("stripepay: expire checkout session: %w: %w", refused, cloud.ErrProviderCredentials)
}

// TestCloseSessionsKeyRefused: Stripe refusing parkgate's key ends the
// pass as an outage does: it is no reservation's fault, and holding each
// one back would leave them all waiting up to an hour after the key is
// fixed.
func TestCloseSessionsKeyRefused(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	svc := booking.New(s.DB, &keyRefusedStripe{}, nil, nil, 10*time.Minute)
	endedHolds(t, svc, s, 2)
	n, err := svc.CloseSessions(context.Background(), 10)
	if n != 0 || !errors.Is(err, cloud.ErrProviderCredentials) {
		t.Errorf("CloseSessions = %d, %v; want none and the refused key", n, err)
	}
	var held int
	if err := s.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_retries`).Scan(&held); err != nil || held != 0 {
		t.Errorf("%d held back for a refused key, %v", held, err)
	}
}

// countingStripe counts the calls to expire each session, each taking a
// while, as Stripe's do.
type countingStripe struct {
	stuckStripe
	mu      sync.Mutex
	expires map[string]int
}

func (p *countingStripe) ExpireSession(ctx context.Context, sessionID, _ string) error {
	p.mu.Lock()
	p.expires[sessionID]++
	p.mu.Unlock()
	select {
	case <-time.After(50 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestProviderWorkOneReplicaAPass: replicas on one store do not each ask
// Stripe to act on the same queue: one leads each pass. Without the lead,
// the others read the same session to close while the first's call is
// under way and ask Stripe again.
func TestProviderWorkOneReplicaAPass(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 8)
	ctx := context.Background()
	stripe := &countingStripe{expires: map[string]int{}}
	svc := booking.New(s.DB, stripe, nil, nil, 10*time.Minute)
	endedHolds(t, svc, s, 3)

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 3 { // three replicas, ticking far more often than a call takes
		replica := booking.New(s.DB, stripe, nil, nil, 10*time.Minute)
		wg.Add(1)
		go func() { defer wg.Done(); replica.RunWorkers(wctx, 2*time.Millisecond) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int
		if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE checkout_session_id IS NOT NULL AND session_closed_at IS NULL`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open", open)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a late replica's calls, were any let through
	stop()
	wg.Wait()
	stripe.mu.Lock()
	defer stripe.mu.Unlock()
	if len(stripe.expires) != 3 {
		t.Errorf("Stripe asked to expire %d sessions; want 3", len(stripe.expires))
	}
	for id, n := range stripe.expires {
		if n != 1 {
			t.Errorf("session %s: Stripe asked %d times; want once", id, n)
		}
	}
}
