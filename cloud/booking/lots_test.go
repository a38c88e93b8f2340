package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestLotCacheRevalidates: a lot changed by another replica is answered
// as cached at once (no caller waits for a read), then as it is now, once
// the entry is older than LotTTL; a change made through this service is
// seen at once.
func TestLotCacheRevalidates(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	other := booking.New(s.DB, nil, nil, nil, 10*time.Minute) // another replica
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "A", TimeZone: "UTC", Spots: []string{"1"},
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	svc.Now = func() time.Time { return now }
	if l, err := svc.Lot(ctx, lot.ID); err != nil || l.HourlyRate.Amount != 100 {
		t.Fatalf("first read: %+v, %v", l, err)
	}
	rate := cloud.Money{Amount: 700, Currency: "EUR"}
	if _, err := other.UpdateLot(ctx, lot.ID, cloud.LotUpdate{HourlyRate: &rate}); err != nil {
		t.Fatal(err)
	}
	if l, _ := svc.Lot(ctx, lot.ID); l.HourlyRate.Amount != 100 {
		t.Fatalf("within LotTTL: rate %d, want the cached 100", l.HourlyRate.Amount)
	}
	now = now.Add(svc.LotTTL + time.Second)
	if l, _ := svc.Lot(ctx, lot.ID); l.HourlyRate.Amount != 100 {
		t.Fatalf("first use past LotTTL: rate %d, want the cached 100 while it is read again", l.HourlyRate.Amount)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := svc.Lot(ctx, lot.ID)
		if l.HourlyRate.Amount == 700 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never read the lot again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := true
	if _, err := svc.UpdateLot(ctx, lot.ID, cloud.LotUpdate{Closed: &closed}); err != nil {
		t.Fatal(err)
	}
	if l, _ := svc.Lot(ctx, lot.ID); !l.Closed {
		t.Errorf("a change through this service is not seen at once")
	}
}
