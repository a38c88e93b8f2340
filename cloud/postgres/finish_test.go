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

// TestFinishHoldsTogether: holds finished at the same moment (as the
// API's clients finish them, each after its Checkout Session) each get
// their own session on their reservation and their own answer under their
// key; one finished without a session leaves its reservation as it was; a
// finish that comes after a payment confirmed the hold (a driver who paid
// faster than the session was stored) stores its session without undoing
// the confirmation.
func TestFinishHoldsTogether(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 8)
	ctx := context.Background()
	const n = 40
	spots := make([]string, n)
	for i := range spots {
		spots[i] = fmt.Sprint("S", i)
	}
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "L", TimeZone: "UTC",
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}, Spots: spots})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	ids := make([]string, n)
	batch := make([]cloud.HoldParams, n)
	for i := range batch {
		ids[i] = uuid.NewString()
		batch[i] = cloud.HoldParams{ID: ids[i], LotID: lot.ID, Plate: fmt.Sprint("P", i),
			StartsAt: start, EndsAt: start.Add(time.Hour), HoldTTL: 10 * time.Minute,
			Price: cloud.Money{Amount: 100, Currency: "EUR"}, Key: fmt.Sprint("k", i), RequestHash: []byte{1},
			Lease: time.Minute, ConflictBody: []byte(`{}`)}
	}
	for i, o := range s.DB.Holds(ctx, batch) {
		if o.Err != nil || o.Outcome != cloud.HoldHeld {
			t.Fatalf("hold %d: %q %v", i, o.Outcome, o.Err)
		}
	}
	// The last hold is paid before its session is stored.
	if changed, _, err := s.DB.ConfirmHold(ctx, ids[n-1], "pi_fast", time.Now()); err != nil || !changed {
		t.Fatalf("confirm: %v %v", changed, err)
	}

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sid, url := fmt.Sprint("cs_", i), fmt.Sprint("https://pay/", i)
			if i == 0 {
				sid, url = "", ""
			}
			errs[i] = s.DB.FinishHold(ctx, ids[i], sid, url, fmt.Sprint("k", i), 201, []byte(fmt.Sprintf(`{"n":%d}`, i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("finish %d: %v", i, err)
		}
	}
	for i := range n {
		rec, ok, err := s.DB.IdempotencyKey(ctx, fmt.Sprint("k", i))
		if err != nil || !ok {
			t.Fatalf("key %d: %v %v", i, ok, err)
		}
		if rec.ResponseStatus != 201 || string(rec.ResponseBody) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("key %d: %d %s", i, rec.ResponseStatus, rec.ResponseBody)
		}
		r, err := s.DB.Reservation(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		wantSID, wantStatus := fmt.Sprint("cs_", i), cloud.StatusPending
		if i == 0 {
			wantSID = ""
		}
		if i == n-1 {
			wantStatus = cloud.StatusConfirmed
		}
		var sid string
		if r.Payment != nil {
			sid = r.Payment.SessionID
		}
		if sid != wantSID || r.Status != wantStatus {
			t.Errorf("reservation %d: session %q status %s, want %q %s", i, sid, r.Status, wantSID, wantStatus)
		}
	}
	var touched int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE id = $1 AND updated_at <> created_at`, ids[0]).Scan(&touched); err != nil {
		t.Fatal(err)
	}
	if touched != 0 {
		t.Error("a finish without a session updated its reservation")
	}
}
