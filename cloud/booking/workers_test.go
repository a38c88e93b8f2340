package booking_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

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
