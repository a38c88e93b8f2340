package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// TestPermitsShareTheLotsSeq: permit writes, presence resets and
// reservation changes written at once take the lot's seqs without a gap or
// a repeat; a revoke of a permit that is not live writes nothing, seq
// included; the audit sees each permit with the seqs of its changes, and
// AllChanges still lists reservation changes only.
func TestPermitsShareTheLotsSeq(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	now := time.Now().UTC().Truncate(time.Microsecond)
	res := f.reservation(lot, protocol.StatusPending, "AB123C", 0)

	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make(chan error, 20)
	for i := range ids {
		ids[i] = uuid.NewString()
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, err := f.db.CreatePermit(ctx, cloud.Permit{ID: ids[i], LotID: lot, Plate: "PM12" + string(rune('A'+i)),
				ValidFrom: now, ValidUntil: now.Add(24 * time.Hour)})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := f.db.ResetPresence(ctx, cloud.PresenceReset{ID: uuid.NewString(), LotID: lot, Plate: "AB123C"})
			errs <- err
		}()
	}
	f.exec(`SELECT * FROM parkgate_change($1, '{PENDING}', 'CONFIRMED')`, res)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seq, err := f.db.RevokePermit(ctx, lot, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{ids[0], uuid.NewString(), "x"} {
		if _, err := f.db.RevokePermit(ctx, lot, bad); cloud.ErrorCode(err) != cloud.ENotFound {
			t.Errorf("revoke %s: %v, want not_found", bad, err)
		}
	}
	if _, err := f.db.RevokePermit(ctx, f.lot(), ids[1]); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("revoke through another lot: %v", err)
	}
	// 1 reservation change (the confirm), 8 permits, 8 resets, 1 revoke.
	page, err := f.db.ReadChanges(ctx, lot, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Changes) != 18 || page.LastSeq != 18 || seq != 18 {
		t.Fatalf("%d changes, last %d, revoke seq %d; want 18 gap-free", len(page.Changes), page.LastSeq, seq)
	}
	kinds := map[protocol.ChangeKind]int{}
	for i, c := range page.Changes {
		if c.Seq != int64(i+1) {
			t.Fatalf("change %d has seq %d", i, c.Seq)
		}
		kinds[c.Kind]++
	}
	if kinds[cloud.ChangeReservation] != 1 || kinds[cloud.ChangePermit] != 9 || kinds[cloud.ChangeReset] != 8 {
		t.Errorf("kinds %v", kinds)
	}
	if last := page.Changes[17]; last.Kind != cloud.ChangePermit || last.Op != protocol.OpDelete || last.ReservationID != ids[0] ||
		!last.StartsAt.Equal(now) {
		t.Errorf("revoke change %+v", last)
	}

	live, err := f.db.Permits(ctx, lot, now)
	if err != nil || len(live) != 7 {
		t.Fatalf("live permits %d, %v; want 7", len(live), err)
	}
	if ended, _ := f.db.Permits(ctx, lot, now.Add(25*time.Hour)); len(ended) != 0 {
		t.Errorf("permits listed after they ended: %d", len(ended))
	}
	ps, err := f.db.AllPermits(ctx)
	if err != nil || len(ps) != 8 {
		t.Fatalf("audit permits %d, %v", len(ps), err)
	}
	for _, p := range ps {
		revoked := p.ID == ids[0]
		if p.Seq == 0 || revoked != (p.RevokeSeq == 18) || revoked == p.RevokedAt.IsZero() {
			t.Errorf("audit permit %+v", p)
		}
	}
	if cs, err := f.db.AllChanges(ctx); err != nil || len(cs) != 1 {
		t.Errorf("AllChanges lists %d rows, want the reservation change: %v", len(cs), err)
	}
}
