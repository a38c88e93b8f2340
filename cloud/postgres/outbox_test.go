package postgres_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/protocol"
)

func TestReadChanges(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, empty := f.lot(), f.lot()
	// Real changes through the database's change function (seqs 1-3),
	// then some more (4-8).
	res := f.reservation(lot, protocol.StatusPending, "AB123C", 0)
	for _, step := range [][2]string{{"{PENDING}", "CONFIRMED"}, {"{CONFIRMED}", "CHECKED_IN"}, {"{CHECKED_IN}", "COMPLETED"}} {
		f.exec(`SELECT * FROM parkgate_change($1, $2::text[], $3)`, res, step[0], step[1])
	}
	f.addChanges(lot, 5)

	t.Run("Paging", func(t *testing.T) {
		var all []cloud.Change
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			page, err := f.db.ReadChanges(ctx, lot, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if page.LotID != lot || page.LastSeq != 8 {
				t.Fatalf("page lot %s last %d", page.LotID, page.LastSeq)
			}
			all = append(all, page.Changes...)
			if !page.More {
				break
			}
			after = page.Changes[len(page.Changes)-1].Seq
		}
		if len(all) != 8 {
			t.Fatalf("%d changes, want 8", len(all))
		}
		for i, c := range all {
			if c.Seq != int64(i+1) {
				t.Errorf("change %d has seq %d", i, c.Seq)
			}
		}
		if c := all[0]; c.Op != protocol.OpUpsert || c.ReservationID != res ||
			c.Status != cloud.StatusConfirmed || c.Plate != "AB123C" || !c.EndsAt.After(c.StartsAt) {
			t.Errorf("seq 1 = %+v", c)
		}
		if c := all[2]; c.Op != protocol.OpDelete || c.Status != cloud.StatusCompleted {
			t.Errorf("seq 3 = %+v", c)
		}
	})

	t.Run("CaughtUp", func(t *testing.T) {
		page, err := f.db.ReadChanges(ctx, lot, 8, 0)
		if err != nil || len(page.Changes) != 0 || page.More || page.LastSeq != 8 {
			t.Errorf("got %+v, %v", page, err)
		}
		page, err = f.db.ReadChanges(ctx, empty, 0, 0)
		if err != nil || len(page.Changes) != 0 || page.Changes == nil || page.LastSeq != 0 {
			t.Errorf("empty lot: %+v, %v", page, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tt := range []struct {
			name, lot string
			after     int64
			code      string
		}{
			{"UnknownLot", uuid.NewString(), 0, cloud.ENotFound},
			{"NotUUID", "lot-1", 0, cloud.ENotFound},
			{"NegativeAfter", lot, -1, cloud.EInvalid},
		} {
			if _, err := f.db.ReadChanges(ctx, tt.lot, tt.after, 10); cloud.ErrorCode(err) != tt.code {
				t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
			}
		}
	})

	t.Run("UppercaseLotID", func(t *testing.T) {
		page, err := f.db.ReadChanges(ctx, strings.ToUpper(lot), 0, 1)
		if err != nil || page.LotID != lot || len(page.Changes) != 1 {
			t.Errorf("got %+v, %v", page, err)
		}
	})
}

// TestOutboxLeases walks one publisher's round: claim, read, mark, and the
// lease that keeps a second publisher off the lot until it is given back.
func TestOutboxLeases(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, quiet := f.lot(), f.lot()
	f.addChanges(lot, 5)

	claimed, err := f.db.ClaimOutboxLots(ctx, "a", time.Minute, 10, nil, 0)
	if err != nil || len(claimed) != 1 || claimed[0].LotID != lot {
		t.Fatalf("claim: %v, %v; want only %s (not %s, which has no changes)", claimed, err, lot, quiet)
	}
	if again, err := f.db.ClaimOutboxLots(ctx, "b", time.Minute, 10, nil, 0); err != nil || len(again) != 0 {
		t.Fatalf("second owner claimed %v, %v while the lease holds", again, err)
	}
	// The owner's own lease, left behind (its release failed), does not
	// keep the lot from it; while it drains the lot, the lot is not
	// claimed again.
	if busy, err := f.db.ClaimOutboxLots(ctx, "a", time.Minute, 10, []string{lot}, 0); err != nil || len(busy) != 0 {
		t.Fatalf("owner claimed %v, %v, a lot it is draining", busy, err)
	}
	if own, err := f.db.ClaimOutboxLots(ctx, "a", time.Minute, 10, nil, 0); err != nil || len(own) != 1 || own[0].LotID != lot {
		t.Fatalf("owner's claim of its own left-behind lease: %v, %v; want %s", own, err, lot)
	}
	if n, err := f.db.OutboxBacklog(ctx); err != nil || n != 5 {
		t.Fatalf("backlog %d, %v", n, err)
	}

	rows, err := f.db.UnpublishedChanges(ctx, lot, 3)
	if err != nil || len(rows) != 3 || rows[0].Seq != 1 || rows[2].Seq != 3 {
		t.Fatalf("unpublished: %+v, %v", rows, err)
	}
	lags, held, err := markOne(ctx, f.db, lot, "a", 1, 3, false)
	if err != nil || len(lags) != 3 || !held {
		t.Fatalf("mark: lags %v held %v, %v", lags, held, err)
	}
	// A second mark of the same rows marks nothing; another owner's mark
	// does not hold the lease.
	if lags, held, err := markOne(ctx, f.db, lot, "b", 1, 3, false); err != nil || len(lags) != 0 || held {
		t.Fatalf("mark again by another owner: lags %v held %v, %v", lags, held, err)
	}
	if rows, err := f.db.UnpublishedChanges(ctx, lot, 10); err != nil || len(rows) != 2 || rows[0].Seq != 4 {
		t.Fatalf("unpublished after the mark: %+v, %v", rows, err)
	}

	if err := f.db.ReleaseOutboxLease(ctx, lot, "b"); err != nil {
		t.Fatal(err)
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases`); n != 1 {
		t.Fatalf("another owner released the lease: %d left", n)
	}
	if err := f.db.ReleaseOutboxLease(ctx, lot, "a"); err != nil {
		t.Fatal(err)
	}
	if claimed, err := f.db.ClaimOutboxLots(ctx, "b", time.Minute, 10, nil, 0); err != nil || len(claimed) != 1 {
		t.Fatalf("claim after release: %v, %v", claimed, err)
	}
	// The last mark of a drain gives the lease back in its round trip:
	// another owner may claim the lot at once. Only the holder's does.
	if lags, held, err := markOne(ctx, f.db, lot, "a", 4, 4, true); err != nil || len(lags) != 1 || held {
		t.Fatalf("mark and release by a non-holder: lags %v held %v, %v", lags, held, err)
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases WHERE owner = 'b'`); n != 1 {
		t.Fatalf("a non-holder's release took the lease: %d left", n)
	}
	if lags, held, err := markOne(ctx, f.db, lot, "b", 5, 5, true); err != nil || len(lags) != 1 || !held {
		t.Fatalf("mark and release: lags %v held %v, %v", lags, held, err)
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases`); n != 0 {
		t.Fatalf("mark and release left %d leases", n)
	}
	if claimed, err := f.db.ClaimOutboxLots(ctx, "c", time.Minute, 10, nil, 0); err != nil || len(claimed) != 0 {
		t.Fatalf("claimed %v, %v with nothing left to publish", claimed, err)
	}
	if _, err := f.db.Pool.Exec(ctx, `UPDATE outbox SET published_at = NULL WHERE lot_id = $1 AND seq = 5`, lot); err != nil {
		t.Fatal(err)
	}
	if claimed, err := f.db.ClaimOutboxLots(ctx, "c", time.Minute, 10, nil, 0); err != nil || len(claimed) != 1 {
		t.Fatalf("claim after mark and release: %v, %v", claimed, err)
	}
	if err := f.db.ReleaseOutboxLeases(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if claimed, err := f.db.ClaimOutboxLots(ctx, "b", time.Minute, 10, nil, 0); err != nil || len(claimed) != 1 {
		t.Fatalf("claim again: %v, %v", claimed, err)
	}
	if err := f.db.ReleaseOutboxLeases(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases`); n != 0 {
		t.Fatalf("%d leases left after releasing all", n)
	}
}

// TestClaimReadsChanges: a claim returns each lot it took with its first
// unpublished changes, as UnpublishedChanges reads them, at most the limit
// asked; not the changes of a lot it did not take (another owner's, or one
// it is draining), and a mark committed before the claim is seen by it.
func TestClaimReadsChanges(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	a, b, c, other := f.lot(), f.lot(), f.lot(), f.lot()
	f.addChanges(a, 5)
	f.addChanges(b, 2)
	f.addChanges(c, 1)
	f.addChanges(other, 3)
	if got, err := f.db.ClaimOutboxLots(ctx, "someone else", time.Minute, 10, []string{a, b, c}, 0); err != nil || len(got) != 1 || got[0].LotID != other || got[0].Changes != nil {
		t.Fatalf("another owner's claim of the fourth lot without a read: %+v, %v", got, err)
	}
	if _, _, err := markOne(ctx, f.db, a, "nobody", 1, 2, false); err != nil {
		t.Fatal(err)
	}

	got, err := f.db.ClaimOutboxLots(ctx, "me", time.Minute, 10, []string{c}, 2)
	if err != nil {
		t.Fatal(err)
	}
	byLot := map[string][]cloud.Change{}
	for _, l := range got {
		byLot[l.LotID] = l.Changes
	}
	if len(got) != 2 || byLot[a] == nil || byLot[b] == nil {
		t.Fatalf("claimed %+v; want lots %s and %s (not %s, being drained, nor %s, another's)", got, a, b, c, other)
	}
	for _, lot := range []string{a, b} {
		want, err := f.db.UnpublishedChanges(ctx, lot, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(byLot[lot], want) {
			t.Errorf("lot %s: claim read %+v, UnpublishedChanges %+v", lot, byLot[lot], want)
		}
	}
	if s := byLot[a]; s[0].Seq != 3 || s[1].Seq != 4 {
		t.Errorf("lot %s read from seq %d; want 3, after the two marked", a, s[0].Seq)
	}
}

// TestClaimLotsOf: a claim of named lots takes those with unpublished
// changes that nobody else holds (its own left-behind lease included), and
// reads their changes as ClaimOutboxLots does; never a lot it did not name,
// one with nothing to publish, another owner's, or one it is draining.
func TestClaimLotsOf(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	a, b, quiet, others, draining, unnamed := f.lot(), f.lot(), f.lot(), f.lot(), f.lot(), f.lot()
	for _, lot := range []string{a, b, others, draining, unnamed} {
		f.addChanges(lot, 2)
	}
	f.exec(`UPDATE outbox SET published_at = now() WHERE lot_id = $1`, b)
	f.addChanges(b, 1)
	if got, _, err := f.db.ClaimOutboxLotsOf(ctx, "other", time.Minute, []string{others}, nil, 0); err != nil || len(got) != 1 {
		t.Fatalf("another owner's claim: %+v, %v", got, err)
	}
	if got, _, err := f.db.ClaimOutboxLotsOf(ctx, "me", time.Minute, []string{draining}, nil, 0); err != nil || len(got) != 1 {
		t.Fatalf("claim of the lot to drain: %+v, %v", got, err)
	}

	// a named twice (two spellings), the lot being drained named too.
	got, waiting, err := f.db.ClaimOutboxLotsOf(ctx, "me", time.Minute,
		[]string{strings.ToUpper(a), b, quiet, others, "not-a-uuid", a, draining}, []string{draining}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(waiting) != 1 || waiting[0] != others {
		t.Errorf("waiting %v; want %s, held by another owner", waiting, others)
	}
	byLot := map[string][]cloud.Change{}
	for _, l := range got {
		byLot[l.LotID] = l.Changes
	}
	if len(got) != 2 || len(byLot[a]) != 2 || len(byLot[b]) != 1 || byLot[b][0].Seq != 3 {
		t.Fatalf("claimed %+v; want %s with seqs 1-2 and %s with seq 3", got, a, b)
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases WHERE lot_id = ANY($1::uuid[])`, []string{quiet, unnamed}); n != 0 {
		t.Errorf("%d leases of a lot with nothing to publish or not named", n)
	}
	if got := f.queryString(`SELECT owner FROM relay_leases WHERE lot_id = $1`, others); got != "other" {
		t.Errorf("another owner's lot went to %q", got)
	}
	if got, _, err := f.db.ClaimOutboxLotsOf(ctx, "me", time.Minute, nil, nil, 10); err != nil || len(got) != 0 {
		t.Errorf("a claim of no lots: %+v, %v", got, err)
	}
}

// TestMarkGroup: one MarkPublished of several lots' runs stamps each run and
// nothing else, renews or gives back each lease as its mark asks, and
// answers each mark in the order given: a lot whose lease another owner
// took is stamped (what was sent was sent) but not held, and its lease
// stays with the other.
func TestMarkGroup(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	a, b, c, lost := f.lot(), f.lot(), f.lot(), f.lot()
	for _, lot := range []string{a, b, c, lost} {
		f.addChanges(lot, 4)
	}
	if got, err := f.db.ClaimOutboxLots(ctx, "me", time.Minute, 10, nil, 0); err != nil || len(got) != 4 {
		t.Fatalf("claim: %+v, %v", got, err)
	}
	f.exec(`UPDATE relay_leases SET owner = 'other' WHERE lot_id = $1`, lost)
	f.exec(`UPDATE relay_leases SET expires_at = now() + interval '1 second' WHERE lot_id = $1`, b)

	res, err := f.db.MarkPublished(ctx, "me", time.Hour, []cloud.Mark{
		{LotID: c, From: 1, To: 4, Release: true},
		{LotID: "no-uuid", From: 1, To: 9},
		{LotID: strings.ToUpper(a), From: 1, To: 2},
		{LotID: lost, From: 1, To: 1},
		{LotID: b, From: 2, To: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		lags int
		held bool
	}{{4, true}, {0, false}, {2, true}, {1, false}, {2, true}}
	for i, w := range want {
		if len(res[i].Lags) != w.lags || res[i].Held != w.held {
			t.Errorf("mark %d: %d lags, held %v; want %d, %v", i, len(res[i].Lags), res[i].Held, w.lags, w.held)
		}
	}
	for _, tc := range []struct {
		lot         string
		unpublished string
	}{{a, "3,4"}, {b, "1,4"}, {c, ""}, {lost, "2,3,4"}} {
		if got := f.queryString(`SELECT coalesce(string_agg(seq::text, ',' ORDER BY seq), '') FROM outbox
			WHERE lot_id = $1 AND published_at IS NULL`, tc.lot); got != tc.unpublished {
			t.Errorf("lot %s unpublished %q; want %q", tc.lot, got, tc.unpublished)
		}
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases WHERE lot_id = $1`, c); n != 0 {
		t.Errorf("the released lot's lease is still there")
	}
	if got := f.queryString(`SELECT owner FROM relay_leases WHERE lot_id = $1`, lost); got != "other" {
		t.Errorf("the lost lot's lease went to %q", got)
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases WHERE owner = 'me' AND expires_at > now() + interval '50 minutes'`); n != 2 {
		t.Errorf("%d leases renewed for the hour asked; want 2 (a and b)", n)
	}
	if res, err := f.db.MarkPublished(ctx, "me", time.Hour, nil); err != nil || len(res) != 0 {
		t.Errorf("no marks: %v, %v", res, err)
	}
}

// markOne is MarkPublished of one lot's run.
func markOne(ctx context.Context, db *postgres.DB, lot, owner string, from, to int64, release bool) (lags []float64, held bool, err error) {
	res, err := db.MarkPublished(ctx, owner, time.Minute, []cloud.Mark{{LotID: lot, From: from, To: to, Release: release}})
	if err != nil {
		return nil, false, err
	}
	return res[0].Lags, res[0].Held, nil
}
