package booking_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// slowStripe answers every call to expire a session after latency, as
// Stripe does over the internet (a few hundred milliseconds).
type slowStripe struct {
	stuckStripe
	latency time.Duration
}

func (p *slowStripe) ExpireSession(ctx context.Context, _, _ string) error {
	select {
	case <-time.After(p.latency):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// BenchmarkCloseSessions: sessions of ended holds closed a second when
// each call to Stripe takes 20 ms; one at a time that is at most 50.
//
//	go test -run '^$' -bench CloseSessions -benchtime 200x ./cloud/booking/
func BenchmarkCloseSessions(b *testing.B) {
	s := pgtest.New(b, 4)
	ctx := context.Background()
	stripe := &slowStripe{latency: 20 * time.Millisecond}
	svc := booking.New(s.DB, stripe, nil, nil, 10*time.Minute)
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "A", TimeZone: "UTC", Spots: []string{"1"},
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Hour).UTC()
	for i := range b.N {
		r, err := svc.Hold(ctx, fmt.Sprintf("bench-%d", i), booking.HoldRequest{LotID: lot.ID, Plate: fmt.Sprintf("B%d", i),
			StartsAt: start.Add(time.Duration(i) * time.Hour), EndsAt: start.Add(time.Duration(i)*time.Hour + time.Hour)}, booking.Limits{})
		if err != nil || r.Status != 201 {
			b.Fatalf("hold %d: %+v, %v", i, r, err)
		}
	}
	if _, err := s.DB.Pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 second'`); err != nil {
		b.Fatal(err)
	}
	if n, err := svc.ExpireDueHolds(ctx); n != b.N || err != nil {
		b.Fatalf("ExpireDueHolds = %d, %v", n, err)
	}
	b.ResetTimer()
	closed := 0
	for closed < b.N {
		n, err := svc.CloseSessions(ctx, 100)
		if err != nil {
			b.Fatal(err)
		}
		closed += n
	}
	b.ReportMetric(float64(closed)/b.Elapsed().Seconds(), "sessions/s")
}
