package booking_test

import (
	"context"
	"testing"
	"time"

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
	endedHolds(b, svc, s, b.N)
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
