package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/protocol"
)

// TestExpireDue: the expiry worker's call ends every due hold, a lot at a
// time, each with a silent change placed at its lot's seq, and nothing
// else: not a hold still standing, not a booking paid since, not a hold of
// a lot another transaction holds for long (waited for briefly, then left
// to the next call).
func TestExpireDue(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	a, b, c := eurLot(t, s, "A", "A1", "A2", "A3", "A4"), eurLot(t, s, "B", "B1", "B2"), eurLot(t, s, "C", "C1")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	hold := func(lot, key string, from time.Time) string { return held(t, s, lot, key, from) }
	a1, a2, a3, standing := hold(a, "a1", start), hold(a, "a2", start), hold(a, "a3", start), hold(a, "a4", start)
	b1, b2 := hold(b, "b1", start), hold(b, "b2", start)
	c1 := hold(c, "c1", start)
	paid := hold(a, "paid", start.Add(3*time.Hour))
	if _, err := s.DB.Pool.Exec(ctx, `SELECT * FROM parkgate_confirm_holds(ARRAY[$1]::uuid[], ARRAY['pi_1'], ARRAY[NULL]::timestamptz[])`,
		paid); err != nil {
		t.Fatal(err)
	}
	// The paid booking's hold time is past too, but it is no hold any more.
	for i, id := range []string{c1, a3, a2, a1, b2, b1, paid} {
		endedAgo(t, s, id, time.Duration(10-i)*time.Minute)
	}
	seqs := func() map[string]int64 {
		t.Helper()
		m, err := s.DB.LotSeqs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := seqs()

	expire := func() map[string]int {
		t.Helper()
		// A call that waited for a busy lot for long would outlast this.
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		ended, err := s.DB.ExpireDue(cctx)
		if err != nil {
			t.Fatalf("expire due: %v", err)
		}
		return ended
	}

	// Lot B is another transaction's (a surge's batch, a confirmation):
	// its holds are left, lot A's and lot C's end.
	busy := lockTimeoutTx(t, s, "5s")
	if _, err := busy.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 FOR NO KEY UPDATE`, b); err != nil {
		t.Fatal(err)
	}
	if got := expire(); !maps.Equal(got, map[string]int{a: 3, c: 1}) {
		t.Errorf("with lot B busy: ended the holds of lots %v, want lot A's 3 (%s) and lot C's (%s)", got, a, c)
	}
	if err := busy.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := expire(); !maps.Equal(got, map[string]int{b: 2}) {
		t.Errorf("then: ended the holds of lots %v, want lot B's 2 (%s)", got, b)
	}
	if got := expire(); len(got) != 0 {
		t.Errorf("nothing left due: ended %v", got)
	}

	want := map[string]protocol.Status{a1: protocol.StatusExpired, a2: protocol.StatusExpired, a3: protocol.StatusExpired,
		b1: protocol.StatusExpired, b2: protocol.StatusExpired, c1: protocol.StatusExpired,
		standing: protocol.StatusPending, paid: protocol.StatusConfirmed}
	for id, st := range want {
		if got, err := s.DB.ReservationStatus(ctx, id); err != nil || got != st {
			t.Errorf("reservation %s: %q, %v; want %s", id, got, err, st)
		}
	}
	// No edge held a PENDING hold: the lots' seqs stay, and each end is a
	// silent change placed at its lot's seq, in the lot's history after
	// the hold it ends.
	if after := seqs(); after[a] != before[a] || after[b] != before[b] || after[c] != before[c] {
		t.Errorf("lot seqs moved: %v, then %v", before, after)
	}
	cs, err := s.DB.AllChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]int{} // reservation → index of its hold in cs
	ended := map[string]bool{}
	for i, c := range cs {
		switch {
		case c.Status == protocol.StatusPending:
			placed[c.ReservationID] = i
		case c.Status == protocol.StatusExpired:
			if c.Silent == 0 || c.Seq != before[c.LotID] {
				t.Errorf("the end of %s: %+v, want silent at seq %d", c.ReservationID, c, before[c.LotID])
			}
			if p, ok := placed[c.ReservationID]; !ok || p > i {
				t.Errorf("the end of %s comes before its hold in the lot's history", c.ReservationID)
			}
			ended[c.ReservationID] = true
		}
	}
	for id, st := range want {
		if ended[id] != (st == protocol.StatusExpired) {
			t.Errorf("reservation %s (%s): its end in the history is %v", id, st, ended[id])
		}
	}
}

// TestExpireDueAsksAgain: a hold paid while the worker's statement runs is
// not expired by it. The payment here moves the row without the lot's lock
// (every real writer takes it, so the worker would skip the lot), which
// makes the worker read the hold as due and then wait for its row: the
// statement must ask the status again once it has the row, or a paid
// booking would be lost.
func TestExpireDueAsksAgain(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "A", "A1")
	id := held(t, s, lot, "k", time.Now().Add(time.Hour).Truncate(time.Minute))
	endedAgo(t, s, id, time.Minute)
	pay := lockTimeoutTx(t, s, "5s")
	if _, err := pay.Exec(ctx, `UPDATE reservations SET status = 'CONFIRMED' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ended map[string]int
		err   error
	}
	done := make(chan result, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ended, err := s.DB.ExpireDue(cctx)
		done <- result{ended, err}
	}()
	// Until the worker waits for the row.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting bool
		if err := s.DB.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%parkgate_expire_lot%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never waited for the hold's row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Longer than the worker's wait for a lot: a hold's row is waited for
	// as long as it takes.
	time.Sleep(400 * time.Millisecond)
	if err := pay.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.ended) != 0 {
		t.Errorf("expire due: ended %v, %v; want nothing (the hold was paid)", r.ended, r.err)
	}
	if st, err := s.DB.ReservationStatus(ctx, id); err != nil || st != protocol.StatusConfirmed {
		t.Errorf("the paid booking is %q, %v; want CONFIRMED", st, err)
	}
}

// TestHoldReadsOnlyItsLot: a hold's read of its lot's overdue holds reads
// its own lot's, not every lot's due holds. With the statistics of a quiet
// hour (analyzed with no PENDING row, as a night leaves them), the generic
// plan of that read took the index on hold_expires_at alone (migration 001),
// and each hold read every due hold of every lot that the expiry worker
// had not ended yet (migration 028).
func TestHoldReadsOnlyItsLot(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	spots := []string{"S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"}
	mine, other := eurLot(t, s, "mine", spots...), eurLot(t, s, "other", spots...)
	// One connection for all: its counts reach the statistics whole
	// (pg_stat_force_next_flush), and no other backend's come late.
	conn, err := s.DB.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(p cloud.HoldParams) {
		t.Helper()
		if outcome, err := holdIn(ctx, conn, p); err != nil || outcome != cloud.HoldHeld {
			t.Fatalf("hold %s: %q, %v", p.Key, outcome, err)
		}
	}
	// A past, analyzed: nothing PENDING.
	exec(`INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
		SELECT gen_random_uuid(), sp.lot_id, sp.id, 'PAST' || k, now() - make_interval(days => k),
		       now() - make_interval(days => k) + interval '1 hour', 'COMPLETED', now() - make_interval(days => k), 100, 'EUR'
		  FROM spots sp, generate_series(1, 50) k`)
	exec(`ANALYZE reservations`)
	// Then the other lot's holds, due and not yet ended by the worker.
	const due = 200
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	for i := range due {
		hold(holdParams(other, fmt.Sprint("o", i), start.Add(time.Duration(i/len(spots))*2*time.Hour)))
	}
	exec(`UPDATE reservations SET hold_expires_at = now() - interval '1 minute' WHERE lot_id = $1 AND status = 'PENDING'`, other)

	read := func() int64 {
		t.Helper()
		exec(`SELECT pg_stat_force_next_flush()`) // this transaction's end flushes what is pending
		var n int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
			 WHERE schemaname = current_schema() AND relname = 'reservations'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The index the read goes through leads with the lot: led by the time,
	// the read would walk every lot's due entries inside the index, which
	// the count below does not see (it counts the entries returned).
	var def string
	if err := conn.QueryRow(ctx, `SELECT indexdef FROM pg_indexes
		 WHERE schemaname = current_schema() AND indexname = 'reservations_pending_lot_idx'`).Scan(&def); err != nil {
		t.Fatalf("the PENDING holds' index: %v", err)
	}
	if !strings.Contains(def, "(lot_id, hold_expires_at) WHERE (status = 'PENDING'::text)") {
		t.Errorf("the PENDING holds' index is %s; want it on (lot_id, hold_expires_at) of PENDING rows", def)
	}
	before := read()
	exec(`SELECT pg_stat_force_next_flush()`)
	hold(holdParams(mine, "mine", start))
	// Its lot has nothing in the window and nothing due: what the hold
	// reads of reservations' indexes is a handful of entries, not the
	// other lot's due holds.
	if n := read() - before; n >= due {
		t.Errorf("the hold read %d index entries of reservations: the other lot's %d due holds", n, due)
	}
}

// TestExpireLotWaitsBriefly: a lot whose row another transaction holds for
// a moment (a surge's batches hold it one after another) is waited for,
// not skipped: skipped, a lot in a rush was caught free one try in three
// to fifteen, and its due holds stayed for ten seconds and more.
func TestExpireLotWaitsBriefly(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "A", "A1", "A2")
	// Both made before either is due: a hold ends the overdue ones in its
	// window itself.
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	for _, id := range []string{held(t, s, lot, "a1", start), held(t, s, lot, "a2", start)} {
		endedAgo(t, s, id, time.Minute)
	}
	busy := lockTimeoutTx(t, s, "5s")
	if _, err := busy.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 FOR NO KEY UPDATE`, lot); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(50 * time.Millisecond)
		_ = busy.Rollback(ctx)
	}()
	ended, err := s.DB.ExpireDue(ctx)
	<-released // before the cleanup's rollback of the same transaction
	if err != nil || !maps.Equal(ended, map[string]int{lot: 2}) {
		t.Errorf("a lot held for 50 ms: ended %v, %v; want its 2 due holds", ended, err)
	}
}

// TestExpireLotLimit: one call of parkgate_expire_lot ends at most p_limit
// holds, those that ended first, so a lot's backlog after an outage ends
// in turns with its lock free between them; ExpireDue asks until fewer
// come back.
func TestExpireLotLimit(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "A", "A1", "A2", "A3")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	ids := []string{held(t, s, lot, "a1", start), held(t, s, lot, "a2", start), held(t, s, lot, "a3", start)}
	// a3's time ended first, then a2's, then a1's.
	for i, id := range ids {
		endedAgo(t, s, id, time.Duration(i+1)*time.Minute)
	}
	expire := func() int {
		t.Helper()
		var n int
		if err := s.DB.Pool.QueryRow(ctx, `SELECT parkgate_expire_lot($1, 2)`, lot).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := expire(); n != 2 {
		t.Errorf("limit 2: ended %d", n)
	}
	if st, err := s.DB.ReservationStatus(ctx, ids[0]); err != nil || st != protocol.StatusPending {
		t.Errorf("the hold whose time ended last: %q, %v; want it left for the next turn", st, err)
	}
	if n := expire(); n != 1 {
		t.Errorf("then: ended %d, want the last one", n)
	}
	if n := expire(); n != 0 {
		t.Errorf("then: ended %d, want none", n)
	}
}
