package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"pgregory.net/rapid"
)

// TestOverlapRuleMatchesPostgres checks, on random windows, that the Go
// overlap rule and Postgres' tstzrange && (what the exclusion constraint
// enforces) agree, and that the rule is symmetric and excludes touching ends.
func TestOverlapRuleMatchesPostgres(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rapid.Check(t, func(t *rapid.T) {
		w := func(name string) (time.Time, time.Time) {
			a := rapid.IntRange(0, 200).Draw(t, name+".start")
			l := rapid.IntRange(1, 100).Draw(t, name+".len")
			return base.Add(time.Duration(a) * time.Minute), base.Add(time.Duration(a+l) * time.Minute)
		}
		as, ae := w("a")
		bs, be := w("b")
		got := cloud.Overlaps(as, ae, bs, be)
		if got != cloud.Overlaps(bs, be, as, ae) {
			t.Fatalf("not symmetric")
		}
		if ae.Equal(bs) && got {
			t.Fatalf("touching windows overlap")
		}
		var pg bool
		if err := s.DB.Pool.QueryRow(ctx, `SELECT tstzrange($1, $2) && tstzrange($3, $4)`, as, ae, bs, be).Scan(&pg); err != nil {
			t.Fatal(err)
		}
		if pg != got {
			t.Fatalf("Overlaps = %v, Postgres && = %v for [%v,%v) [%v,%v)", got, pg, as, ae, bs, be)
		}
	})
}

func TestPrice(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		d    time.Duration
		rate int64
		want int64
	}{
		{time.Hour, 250, 250}, {90 * time.Minute, 250, 375}, {time.Minute, 250, 5},
		{61 * time.Second, 60, 2}, {time.Second, 100, 2}, {2 * time.Hour, 0, 0},
	} {
		got, err := cloud.Price(cloud.Money{Amount: tt.rate, Currency: "EUR"}, start, start.Add(tt.d))
		if err != nil || got.Amount != tt.want {
			t.Errorf("Price(%d/h, %v) = %d, want %d", tt.rate, tt.d, got.Amount, tt.want)
		}
	}
}
