package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestConfirmHoldsTogether: confirmations arriving at once share
// statements, and each still gets its own answer: standing holds are
// confirmed, lapsed or already confirmed ones and unknown ids are left
// alone, and every lot's change log stays gap-free.
func TestConfirmHoldsTogether(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 20)
	ctx := context.Background()
	var lots []string
	for range 3 {
		spots := make([]string, 20)
		for i := range spots {
			spots[i] = fmt.Sprint("S", i)
		}
		l, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "L", TimeZone: "UTC", HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}, Spots: spots})
		if err != nil {
			t.Fatal(err)
		}
		lots = append(lots, l.ID)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	type want struct {
		id      string
		changed bool
	}
	var cases []want
	for i := range 45 {
		id := uuid.NewString()
		res, err := s.DB.Hold(ctx, cloud.HoldParams{ID: id, LotID: lots[i%3], Plate: fmt.Sprint("C", i),
			StartsAt: start, EndsAt: start.Add(time.Hour), HoldTTL: 10 * time.Minute,
			Price: cloud.Money{Amount: 100, Currency: "EUR"}, Key: "k" + id, RequestHash: []byte{1}, Lease: time.Minute})
		if err != nil || res.Outcome != cloud.HoldHeld {
			t.Fatalf("hold %d: %v %v", i, res.Outcome, err)
		}
		switch i % 3 {
		case 0: // standing
			cases = append(cases, want{id, true})
		case 1: // lapsed
			if _, err := s.DB.Pool.Exec(ctx, `UPDATE reservations SET hold_expires_at = now() - interval '1 minute' WHERE id = $1`, id); err != nil {
				t.Fatal(err)
			}
			cases = append(cases, want{id, false})
		case 2: // confirmed before
			if ok, _, err := s.DB.ConfirmHold(ctx, id, "pi_before", time.Now()); err != nil || !ok {
				t.Fatalf("confirm before: %v %v", ok, err)
			}
			cases = append(cases, want{id, false})
		}
	}
	cases = append(cases, want{uuid.NewString(), false}, want{"not-a-uuid", false})
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() {
			changed, lot, err := s.DB.ConfirmHold(ctx, c.id, "pi_"+c.id, time.Now())
			if err != nil || changed != c.changed || changed != (lot != "") {
				t.Errorf("ConfirmHold(%s) = %v, %q, %v; want changed %v", c.id, changed, lot, err, c.changed)
			}
		})
	}
	wg.Wait()
	var confirmed, other, gaps int
	if err := s.DB.Pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE status = 'CONFIRMED'), count(*) FILTER (WHERE status <> 'CONFIRMED'),
		       (SELECT count(*) FROM lots l WHERE l.seq <> (SELECT count(*) FROM outbox o WHERE o.lot_id = l.id))
		  FROM reservations`).Scan(&confirmed, &other, &gaps); err != nil {
		t.Fatal(err)
	}
	// The lapsed holds are not confirmed (later holds on their window
	// may have expired them already).
	if confirmed != 30 || other != 15 || gaps != 0 {
		t.Fatalf("%d confirmed, %d not, %d lots with gaps; want 30, 15, 0", confirmed, other, gaps)
	}
}
