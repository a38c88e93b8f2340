package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestSearchTurns: searches beyond the limit wait for a turn, give up with
// their caller, and run once a turn is free.
func TestSearchTurns(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	s.DB.LimitSearches(1)
	start := time.Now().Add(time.Hour)
	search := func(ctx context.Context) error {
		_, err := s.DB.SearchLots(ctx, 48.1, 11.5, 1000, start, start.Add(time.Hour), 10)
		return err
	}
	release := s.DB.TakeSearchTurn()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := search(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("search while the only turn is taken: %v, want it to wait and give up with its caller", err)
	}

	done := make(chan error, 1)
	go func() { done <- search(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("search ran while the only turn was taken: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("search after the turn came free: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("search did not run after the turn came free")
	}
}
