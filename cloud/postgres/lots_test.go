package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
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

// TestSearchAcrossTheMeridian (finding 7): a lot at 179.999° is 222 m from
// -179.999° on the equator, and found from either side.
func TestSearchAcrossTheMeridian(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	east, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "East", Latitude: 0, Longitude: 179.999, TimeZone: "UTC",
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}, Spots: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	west, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "West", Latitude: 0, Longitude: -179.999, TimeZone: "UTC",
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}, Spots: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour)
	for _, tt := range []struct {
		lng  float64
		want string
	}{{-179.999, east.ID}, {179.999, west.ID}} {
		got, err := s.DB.SearchLots(ctx, 0, tt.lng, 1000, start, start.Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range got {
			if m.Lot.ID == tt.want {
				found = true
				if m.DistanceM < 200 || m.DistanceM > 250 {
					t.Errorf("distance across the meridian %.1f m, want about 222", m.DistanceM)
				}
			}
		}
		if !found {
			t.Errorf("search from %g within 1 km: %d lots, missing the one across the meridian", tt.lng, len(got))
		}
	}
}

// TestLotsNamed: a name matches anywhere in a lot's name, case folded, as
// characters (a "%" or "_" is no pattern), sorted by name, at most the
// limit, each with its availability over the window asked.
func TestLotsNamed(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	ids := map[string]string{}
	for _, name := range []string{"Central Garage", "central station P2", "Airport 50% off", "Harbour_East"} {
		l, err := s.DB.CreateLot(ctx, cloud.Lot{Name: name, Latitude: 48, Longitude: 11, TimeZone: "UTC",
			HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}, Spots: []string{"1", "2"}})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = l.ID
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	if _, err := s.DB.Pool.Exec(ctx, `INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
		SELECT gen_random_uuid(), $1, min(id), 'AB1', $2, $3, 'CONFIRMED', now(), 100, 'EUR' FROM spots WHERE lot_id = $1`,
		ids["Central Garage"], start, start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	names := func(q string, limit int) (out []string) {
		t.Helper()
		got, err := s.DB.LotsNamed(ctx, q, start, start.Add(time.Hour), limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			out = append(out, fmt.Sprintf("%s/%d", m.Lot.Name, m.Available))
		}
		return out
	}
	for _, tt := range []struct {
		q     string
		limit int
		want  string
	}{
		{"CENTRAL", 10, "Central Garage/1,central station P2/2"},
		{"central", 1, "Central Garage/1"},
		{"%", 10, "Airport 50% off/2"},
		{"_", 10, "Harbour_East/2"},
		{"nowhere", 10, ""},
	} {
		if got := strings.Join(names(tt.q, tt.limit), ","); got != tt.want {
			t.Errorf("LotsNamed(%q, %d) = %q, want %q", tt.q, tt.limit, got, tt.want)
		}
	}
}
