package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/protocol"
)

// TestHoldsTogether: holds of one lot written as one batch each get their
// own answer (spots while they last, then no_availability; a key used twice
// in the batch made once), a PENDING hold tells the edges nothing (the
// lot's log and seq untouched, each placed in the lot's history in the
// order made, on its own row)
// while a free lot's CONFIRMED holds go down its log gap-free, and a batch
// the database refuses as a whole (a lot that does not exist) is made again
// request by request, so only the bad request fails.
func TestHoldsTogether(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "L", "A", "B", "C")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	params := func(lotID, key string) cloud.HoldParams { return holdParams(lotID, key, start) }

	batch := []cloud.HoldParams{params(lot, "a"), params(lot, "b"), params(lot, "a"), params(lot, "c"), params(lot, "d")}
	want := []string{cloud.HoldHeld, cloud.HoldHeld, cloud.HoldKeyExists, cloud.HoldHeld, cloud.HoldNoAvailability}
	out := s.DB.Holds(ctx, batch)
	spots := map[string]bool{}
	for i, o := range out {
		if o.Err != nil || o.Outcome != want[i] {
			t.Fatalf("request %d: %q %v, want %q", i, o.Outcome, o.Err, want[i])
		}
		if o.Outcome == cloud.HoldHeld {
			if spots[o.SpotID] || o.SpotID == "" {
				t.Errorf("request %d given spot %q twice or none", i, o.SpotID)
			}
			spots[o.SpotID] = true
		}
	}
	for i, o := range out {
		if o.Seq != 0 {
			t.Errorf("PENDING hold %d reports seq %d, want none", i, o.Seq)
		}
	}
	var logged, lotSeq int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox WHERE lot_id = $1), (SELECT seq FROM lots WHERE id = $1)`,
		lot).Scan(&logged, &lotSeq); err != nil {
		t.Fatal(err)
	}
	if logged != 0 || lotSeq != 0 {
		t.Errorf("PENDING holds: %d changes logged, lot seq %d; want none, 0", logged, lotSeq)
	}
	// Each PENDING hold keeps its place in the lot's history on its own
	// row (migration 027): no silent_changes row of its own.
	var own int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM silent_changes WHERE lot_id = $1`, lot).Scan(&own); err != nil || own != 0 {
		t.Errorf("PENDING holds wrote %d silent_changes rows (%v), want none", own, err)
	}
	silent, err := s.DB.Pool.Query(ctx, `SELECT reservation_id::text FROM lot_history
		WHERE lot_id = $1 AND status = 'PENDING' AND seq = 0 AND silent > 0 ORDER BY silent`, lot)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(silent, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if wantIDs := []string{batch[0].ID, batch[1].ID, batch[3].ID}; !slices.Equal(ids, wantIDs) {
		t.Errorf("silent changes %v, want the holds in the order made %v", ids, wantIDs)
	}

	free, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "F", TimeZone: "UTC",
		HourlyRate: cloud.Money{Amount: 0, Currency: "EUR"}, Spots: []string{"A", "B", "C"}})
	if err != nil {
		t.Fatal(err)
	}
	freeBatch := []cloud.HoldParams{params(free.ID, "fa"), params(free.ID, "fb"), params(free.ID, "fc")}
	for i := range freeBatch {
		freeBatch[i].Price.Amount = 0
	}
	for i, o := range s.DB.Holds(ctx, freeBatch) {
		if o.Err != nil || o.Outcome != cloud.HoldHeld || o.Seq != int64(i+1) {
			t.Errorf("free hold %d: %q seq %d %v, want held at seq %d", i, o.Outcome, o.Seq, o.Err, i+1)
		}
	}
	var n, maxSeq, distinct, placed int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*), max(seq), count(DISTINCT seq),
		(SELECT count(*) FROM reservations WHERE lot_id = $1 AND (silent_id IS NOT NULL OR silent_after_seq IS NOT NULL))
		FROM outbox WHERE lot_id = $1 AND op = 'upsert'`,
		free.ID).Scan(&n, &maxSeq, &distinct, &placed); err != nil {
		t.Fatal(err)
	}
	if n != 3 || maxSeq != 3 || distinct != 3 || placed != 0 {
		t.Errorf("free lot's outbox: %d upserts, max seq %d, %d distinct, %d placed as silent; want 3 gap-free, none silent",
			n, maxSeq, distinct, placed)
	}

	// A batch with a lot that does not exist fails as a whole in the
	// database; the others are made one by one and only it fails.
	other := eurLot(t, s, "M", "A", "B")
	out = s.DB.Holds(ctx, []cloud.HoldParams{params(other, "e"), params(uuid.NewString(), "f"), params(other, "g")})
	for i, w := range []string{cloud.HoldHeld, "", cloud.HoldHeld} {
		o := out[i]
		if w == "" {
			if cloud.ErrorCode(o.Err) != cloud.ENotFound {
				t.Errorf("request %d on an unknown lot: %q %v, want not_found", i, o.Outcome, o.Err)
			}
			continue
		}
		if o.Err != nil || o.Outcome != w {
			t.Errorf("request %d: %q %v, want %q", i, o.Outcome, o.Err, w)
		}
	}
	var keys int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE key IN ('e', 'f', 'g')`).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != 2 {
		t.Errorf("%d keys stored for e, f, g; want 2 (f's lot does not exist)", keys)
	}
}

// TestKnownKeys: the batch read of the full-lot fast path tells the keys of
// holds made (and of one refused, whose answer is stored too) from keys
// never used, in the order asked, repeats included.
func TestKnownKeys(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	lot := eurLot(t, s, "L", "A")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	var batch []cloud.HoldParams
	for _, key := range []string{"made", "refused"} {
		batch = append(batch, holdParams(lot, key, start))
	}
	for i, o := range s.DB.Holds(ctx, batch) {
		if o.Err != nil {
			t.Fatalf("hold %d: %v", i, o.Err)
		}
	}
	got, err := s.DB.KnownKeys(ctx, []string{"new", "made", "refused", "made", "other"})
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, true, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("KnownKeys = %v, want %v", got, want)
		}
	}
}

// TestHoldNamedSpot: a hold for a named spot gets that spot when it is free
// for the window, whatever the lot's other spots hold, and only then; a
// lapsed hold on it blocks nobody (it is expired, silently); another lot's
// spot of the same label is no answer. The named spot has its own
// statement in parkgate_hold, apart from any spot's.
func TestHoldNamedSpot(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	rate := cloud.Money{Amount: 100, Currency: "EUR"}
	newLot := func(spots ...string) string {
		l, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "N", TimeZone: "UTC", HourlyRate: rate, Spots: spots})
		if err != nil {
			t.Fatal(err)
		}
		return l.ID
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	n := 0
	hold := func(lot, spot string, from, to time.Time, ttl time.Duration) cloud.HoldResult {
		t.Helper()
		n++
		key := uuid.NewString()
		r, err := s.DB.Hold(ctx, cloud.HoldParams{ID: uuid.NewString(), LotID: lot, SpotID: spot, Plate: fmt.Sprintf("NS%d", n),
			StartsAt: from, EndsAt: to, HoldTTL: ttl, Price: rate, Key: key, RequestHash: []byte{1},
			Lease: time.Minute, ConflictBody: []byte(`{}`)})
		if err != nil {
			t.Fatalf("hold %s: %v", spot, err)
		}
		return r
	}
	hour := start.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		before  func(lot string) // what the lot holds first
		spot    string
		outcome string
	}{
		{"free", func(string) {}, "B", cloud.HoldHeld},
		{"others taken", func(lot string) { hold(lot, "A", start, hour, time.Minute); hold(lot, "C", start, hour, time.Minute) }, "B", cloud.HoldHeld},
		{"taken", func(lot string) { hold(lot, "B", start, hour, time.Minute) }, "B", cloud.HoldNoAvailability},
		{"taken in part of the window", func(lot string) { hold(lot, "B", start.Add(30*time.Minute), hour.Add(time.Hour), time.Minute) }, "B", cloud.HoldNoAvailability},
		{"taken before the window", func(lot string) { hold(lot, "B", start.Add(-time.Hour), start, time.Minute) }, "B", cloud.HoldHeld},
		{"lapsed hold", func(lot string) { hold(lot, "B", start, hour, -time.Minute) }, "B", cloud.HoldHeld},
		{"label of another lot", func(string) { newLot("Z") }, "Z", cloud.HoldUnknownSpot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lot := newLot("A", "B", "C")
			tc.before(lot)
			r := hold(lot, tc.spot, start, hour, time.Minute)
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome %q, want %q", r.Outcome, tc.outcome)
			}
			if r.Outcome == cloud.HoldHeld && r.SpotID != tc.spot {
				t.Errorf("given spot %q, want %q", r.SpotID, tc.spot)
			}
		})
	}
}

// TestHoldReadsItsOwnLotsSpots: a hold for any spot reads its own lot's
// spots, one row when the first is free, however many lots were made
// before it. Counted, not timed: the rows its transaction fetched from
// spots (pg_stat_xact_user_tables), over 20 holds on the newest of 40 lots.
// Before migration 022 Postgres walked the spots' primary key across every
// earlier lot, about 1,000 rows a hold here and 25,000 over a thousand lots.
func TestHoldReadsItsOwnLotsSpots(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	rate := cloud.Money{Amount: 100, Currency: "EUR"}
	labels := make([]string, 25)
	for i := range labels {
		labels[i] = fmt.Sprintf("S%02d", i)
	}
	var last string
	for range 40 {
		l, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "R", TimeZone: "UTC", HourlyRate: rate, Spots: labels})
		if err != nil {
			t.Fatal(err)
		}
		last = l.ID
	}
	if _, err := s.DB.Pool.Exec(ctx, `ANALYZE lots, spots, reservations`); err != nil {
		t.Fatal(err)
	}
	tx, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	const holds = 20
	start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	for i := range holds {
		// Each in a window of its own: the lot's first spot is free.
		w := start.Add(time.Duration(i) * time.Hour)
		p := cloud.HoldParams{ID: uuid.NewString(), LotID: last, Plate: fmt.Sprintf("RS%d", i),
			StartsAt: w, EndsAt: w.Add(time.Hour), HoldTTL: 10 * time.Minute, Price: rate,
			Key: uuid.NewString(), RequestHash: []byte{1}, Lease: time.Minute, ConflictBody: []byte(`{}`)}
		var outcome string
		if err := tx.QueryRow(ctx, postgres.HoldSQL, postgres.HoldArgs(&p)...).Scan(&outcome, nil, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if outcome != cloud.HoldHeld {
			t.Fatalf("hold %d: %s", i, outcome)
		}
	}
	var read int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
		FROM pg_stat_xact_user_tables WHERE relid = 'spots'::regclass`).Scan(&read); err != nil {
		t.Fatal(err)
	}
	// The spot itself, and its foreign-key check: 2 a hold, with room.
	perHold := float64(read) / holds
	t.Logf("spot rows read: %.1f a hold", perHold)
	if perHold > 5 {
		t.Errorf("a hold read %.0f spot rows (%d for %d holds); want its own lot's first few, not every earlier lot's", perHold, read, holds)
	}
}

// TestHoldsOfSeveralLots: one batch may carry holds of several lots (the
// service sends calm lots' holds together). Each gets its own answer, in
// the order asked, and the lots are taken in the order of their ids, each
// lot's holds in the order given: the lower id's row is locked while the
// batch waits for the higher one's, as parkgate_confirm_holds takes them,
// so two batches never wait for each other in a cycle.
func TestHoldsOfSeveralLots(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 6)
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"X", "Y"} {
		ids = append(ids, eurLot(t, s, name, "A", "B"))
	}
	slices.Sort(ids)
	lo, hi := ids[0], ids[1]
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	params := func(lotID, key string) cloud.HoldParams {
		p := holdParams(lotID, "several-"+key, start)
		p.Plate, p.FinalStatus = "P"+key, 201
		return p
	}
	batch := []cloud.HoldParams{params(hi, "h1"), params(lo, "l1"), params(hi, "h2")}

	// Another transaction holds the higher lot's row.
	tx, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 FOR UPDATE`, hi); err != nil {
		t.Fatal(err)
	}
	done := make(chan []cloud.HoldOutcome, 1)
	go func() { done <- s.DB.Holds(ctx, batch) }()
	// The batch locks the lower lot, then waits for the higher one.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := s.DB.Pool.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 FOR UPDATE NOWAIT`, lo)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch waits for the higher lot id without holding the lower one: not taken in id order")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	out := <-done
	for i, o := range out {
		if o.Err != nil || o.Outcome != cloud.HoldHeld {
			t.Fatalf("request %d: %q %v", i, o.Outcome, o.Err)
		}
		var lot string
		if err := s.DB.Pool.QueryRow(ctx, `SELECT lot_id::text FROM reservations WHERE id = $1`, batch[i].ID).Scan(&lot); err != nil || lot != batch[i].LotID {
			t.Errorf("request %d made on lot %q (%v), asked %q", i, lot, err, batch[i].LotID)
		}
	}
	if out[0].SpotID == out[2].SpotID {
		t.Errorf("both holds of the higher lot on spot %q", out[0].SpotID)
	}
	rows, err := s.DB.Pool.Query(ctx, `SELECT reservation_id::text FROM lot_history WHERE silent > 0 ORDER BY silent`)
	if err != nil {
		t.Fatal(err)
	}
	made, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{batch[1].ID, batch[0].ID, batch[2].ID}; !slices.Equal(made, want) {
		t.Errorf("made in the order %v, want the lower lot's first, then the higher's as given: %v", made, want)
	}
}

// TestHoldsNoWait: a NoWait hold on a lot another transaction has locked
// for update (another hold, a writer of the lot's seq) answers lot_locked
// at once and writes nothing, and the batch's other lots' holds are made,
// without waiting for it. A key-share lock, as any insert of a row keyed
// to the lot takes, does not stop the hold (migration 026). A lot that
// does not exist is still not found, not busy. Without NoWait, the same
// hold waits for the lot (TestHoldsOfSeveralLots).
func TestHoldsNoWait(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 6)
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"X", "Y", "Z"} {
		ids = append(ids, eurLot(t, s, name, "A"))
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	params := func(lotID, key string) cloud.HoldParams {
		p := holdParams(lotID, "nowait-"+key, start)
		p.Plate, p.FinalStatus, p.NoWait = "P"+key, 201, true
		return p
	}

	for _, c := range []struct{ lock, busyOutcome string }{
		{"FOR UPDATE", cloud.HoldLotLocked},
		{"FOR NO KEY UPDATE", cloud.HoldLotLocked},
		{"FOR KEY SHARE", cloud.HoldHeld},
	} {
		lock := c.lock
		t.Run(lock, func(t *testing.T) {
			tag := strings.ReplaceAll(lock, " ", "")
			busy := params(ids[1], tag+"-busy")
			batch := []cloud.HoldParams{params(ids[2], tag+"-after"), busy, params(ids[0], tag+"-before")}
			tx, err := s.DB.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 `+lock, busy.LotID); err != nil {
				t.Fatal(err)
			}
			done := make(chan []cloud.HoldOutcome, 1)
			go func() { done <- s.DB.Holds(ctx, batch) }()
			var out []cloud.HoldOutcome
			select {
			case out = <-done:
			case <-time.After(15 * time.Second):
				_ = tx.Rollback(ctx)
				t.Fatalf("the batch waited for the lot another transaction holds (%s)", lock)
			}
			want := []string{cloud.HoldHeld, c.busyOutcome, cloud.HoldHeld}
			for i, o := range out {
				if o.Err != nil || o.Outcome != want[i] {
					t.Errorf("request %d: %q %v, want %q", i, o.Outcome, o.Err, want[i])
				}
			}
			if c.busyOutcome == cloud.HoldHeld {
				if err := tx.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := s.DB.Pool.Exec(ctx, `DELETE FROM reservations`); err != nil {
					t.Fatal(err)
				}
				return
			}
			var made, keys int
			if err := s.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reservations WHERE id = $1),
				(SELECT count(*) FROM idempotency_keys WHERE key = $2)`, busy.ID, busy.Key).Scan(&made, &keys); err != nil {
				t.Fatal(err)
			}
			if made != 0 || keys != 0 {
				t.Errorf("the busy lot's hold wrote %d reservations and %d keys, want none", made, keys)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			// Once the lot is free, the same hold (again, as the caller
			// makes it) is made.
			if out := s.DB.Holds(ctx, []cloud.HoldParams{busy}); out[0].Err != nil || out[0].Outcome != cloud.HoldHeld {
				t.Errorf("the hold again on a free lot: %q %v", out[0].Outcome, out[0].Err)
			}
			if _, err := s.DB.Pool.Exec(ctx, `DELETE FROM reservations`); err != nil {
				t.Fatal(err)
			}
		})
	}

	missing := params(uuid.NewString(), "missing")
	if out := s.DB.Holds(ctx, []cloud.HoldParams{missing}); cloud.ErrorCode(out[0].Err) != cloud.ENotFound {
		t.Errorf("a NoWait hold on a lot that does not exist: %q %v, want not_found", out[0].Outcome, out[0].Err)
	}
}

// TestHoldLeavesKeySharersAlone: while a hold on a lot is in flight (its
// transaction open), an edge's gate event for that lot that moves no
// reservation (a deny), whose insert key-share-locks the lot's row, is
// ingested at once, and the lot's holds are not held up by such an insert
// either (migration 026). Under FOR UPDATE the insert waited for the
// hold's commit: a hot lot's denied plates queued behind its holds.
// Another hold on the lot still waits its turn, as does anything that
// writes the lot's seq (a check-in: parkgate_change).
func TestHoldLeavesKeySharersAlone(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "K", "A", "B")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	tx, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if outcome, err := holdIn(ctx, tx, holdParams(lot, "keyshare-1", start)); err != nil || outcome != cloud.HoldHeld {
		t.Fatalf("the hold in flight: %q %v", outcome, err)
	}

	// The whole ingest of a deny, as an edge's event arrives: the event's
	// row, the lot's presence, the repeated-deny alert's count.
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.DB.IngestGateEvent(ictx, denied(lot, "ZZ1"), cloud.Transition{}); err != nil {
		t.Errorf("a denied plate of the lot while a hold is in flight: %v (want it in at once)", err)
	}

	// And the other way round: a gate event's insert in flight, a hold
	// (without NoWait) on the lot is made at once.
	etx := lockTimeoutTx(t, s, "2s")
	if _, err := etx.Exec(ctx, `INSERT INTO gate_events (event_id, lot_id, gate_id, direction, kind, plate,
		confidence, decision, reason, occurred_at, decided_in_us)
		VALUES ('ks-ev-2', $1, 'g1', 'entry', 'decision', 'ZZ2', 0.9, 'deny', 'no_reservation', now(), 50)`, lot); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if outcome, err := holdIn(ctx, lockTimeoutTx(t, s, "2s"), holdParams(lot, "keyshare-2", start)); err != nil || outcome != cloud.HoldHeld {
		t.Errorf("a hold while a gate event of its lot is in flight: %q %v (want it made at once)", outcome, err)
	}

	// A second hold on the lot still takes its turn after the first.
	var code string
	outcome, err := holdIn(ctx, lockTimeoutTx(t, s, "200ms"), holdParams(lot, "keyshare-3", start))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code = pgErr.Code
	}
	if code != "55P03" {
		t.Errorf("a second hold while the first is in flight: %q %v, want it to wait for the lot (lock_not_available under lock_timeout)", outcome, err)
	}
}

// TestLotWritersLeaveKeySharersAlone: a payment's confirmation and a
// cancellation lock their lot as a hold does (migration 026), so an edge's
// denied plate of that lot is ingested while either is in flight. Under
// FOR UPDATE it waited for their commit: a surge's confirmations held up
// the lot's gate events.
func TestLotWritersLeaveKeySharersAlone(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "W", "A", "B", "C")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	for i, c := range []struct{ name, sql, want string }{
		{"confirmation", `SELECT 'confirmed' FROM parkgate_confirm_holds(ARRAY[$1::uuid], ARRAY['pi_w'], ARRAY[now()])`, "confirmed"},
		{"cancellation", `SELECT outcome FROM parkgate_cancel($1, now())`, "cancelled_silent"}, // a PENDING hold's
	} {
		t.Run(c.name, func(t *testing.T) {
			p := holdParams(lot, fmt.Sprint("writers-", i), start)
			p.FinalStatus = 201
			if out := s.DB.Holds(ctx, []cloud.HoldParams{p}); out[0].Err != nil || out[0].Outcome != cloud.HoldHeld {
				t.Fatalf("the hold: %q %v", out[0].Outcome, out[0].Err)
			}
			tx, err := s.DB.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			var got string
			if err := tx.QueryRow(ctx, c.sql, p.ID).Scan(&got); err != nil || got != c.want {
				t.Fatalf("the %s in flight: %q %v, want %q", c.name, got, err, c.want)
			}
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := s.DB.IngestGateEvent(ictx, denied(lot, fmt.Sprint("ZW", i)), cloud.Transition{}); err != nil {
				t.Errorf("a denied plate of the lot while a %s is in flight: %v (want it in at once)", c.name, err)
			}
		})
	}
}

// eurLot makes a lot at 1.00 EUR an hour with the spots labelled, and
// returns its id.
func eurLot(t testing.TB, s *pgtest.Schema, name string, spots ...string) string {
	t.Helper()
	l, err := s.DB.CreateLot(context.Background(), cloud.Lot{Name: name, TimeZone: "UTC",
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}, Spots: spots})
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// holdParams is a PENDING hold of an hour from start on an eurLot, under
// key, left open (no FinalStatus).
func holdParams(lotID, key string, start time.Time) cloud.HoldParams {
	return cloud.HoldParams{ID: uuid.NewString(), LotID: lotID, Plate: "P" + key,
		StartsAt: start, EndsAt: start.Add(time.Hour), HoldTTL: 10 * time.Minute,
		Price: cloud.Money{Amount: 100, Currency: "EUR"}, Key: key, RequestHash: []byte{1},
		Lease: time.Minute, ConflictBody: []byte(`{}`)}
}

// lockTimeoutTx begins a transaction, rolled back when the test ends,
// whose statements fail with lock_not_available (55P03) rather than wait
// longer than d for a lock: a test of who waits for whom fails rather
// than hangs.
func lockTimeoutTx(t *testing.T, s *pgtest.Schema, d string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, d); err != nil {
		t.Fatal(err)
	}
	return tx
}

// held makes a PENDING hold of an hour from start on lot, under key, and
// returns its id; it fails the test unless the hold is made.
func held(t *testing.T, s *pgtest.Schema, lot, key string, start time.Time) string {
	t.Helper()
	p := holdParams(lot, key, start)
	if out := s.DB.Holds(context.Background(), []cloud.HoldParams{p}); out[0].Err != nil || out[0].Outcome != cloud.HoldHeld {
		t.Fatalf("hold %s: %+v", key, out[0])
	}
	return p.ID
}

// endedAgo moves the end of hold id's time ago into the past.
func endedAgo(t *testing.T, s *pgtest.Schema, id string, ago time.Duration) {
	t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(),
		`UPDATE reservations SET hold_expires_at = now() - make_interval(secs => $2) WHERE id = $1`, id, ago.Seconds()); err != nil {
		t.Fatal(err)
	}
}

// holdIn calls parkgate_hold for p in tx, which stays open (and the lot
// locked) for the caller, and returns the outcome; or on one connection
// (a *pgxpool.Conn), as its own transaction.
func holdIn(ctx context.Context, tx interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, p cloud.HoldParams) (string, error) {
	var outcome string
	err := tx.QueryRow(ctx, `SELECT outcome FROM parkgate_hold($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		p.ID, p.LotID, p.Plate, p.StartsAt, p.EndsAt, p.HoldTTL, p.Price.Amount, p.Price.Currency,
		p.Key, p.RequestHash, p.Lease, p.ConflictBody).Scan(&outcome)
	return outcome, err
}

// denied is an edge's event of a plate its gate at lotID turned away: one
// that moves no reservation.
func denied(lotID, plate string) *protocol.GateEvent {
	return &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lotID, GateID: "g1",
		Direction: protocol.DirectionEntry, Plate: plate, Confidence: 0.9, Decision: protocol.DecisionDeny,
		Reason: "no_reservation", OccurredAt: time.Now(), DecidedInUs: 50}
}
