package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

func (f *edgeFixture) event(lot, direction, decision, plate string) *protocol.GateEvent {
	return &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), Kind: protocol.KindDecision, LotID: lot,
		GateID: "g-" + direction, Direction: direction, Plate: plate, Confidence: 0.9, Decision: decision,
		Reason: "valid", OccurredAt: time.Now(), DecidedInUs: 40}
}

func (f *edgeFixture) ingest(e *protocol.GateEvent) cloud.GateEventResult {
	f.tb.Helper()
	out, err := f.db.IngestGateEvent(context.Background(), e, cloud.Transition{})
	if err != nil {
		f.tb.Fatalf("ingest %+v: %v", e, err)
	}
	return out
}

func (f *edgeFixture) inside(lot string) int {
	f.tb.Helper()
	o, err := f.db.Occupancy(context.Background(), lot)
	if err != nil {
		f.tb.Fatal(err)
	}
	if n := f.queryInt(`SELECT count(*) FROM lot_presence WHERE lot_id = $1`, lot); n != int64(o.Inside) {
		f.tb.Fatalf("occupancy says %d inside, lot_presence has %d rows", o.Inside, n)
	}
	return o.Inside
}

// TestOccupancy: entries and exits that opened the barrier move the count,
// once per plate; denials, redeliveries, a second entry of a plate inside
// and an exit of a plate not inside do not; a reset takes the plate out.
func TestOccupancy(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()
	const in, out = protocol.DirectionEntry, protocol.DirectionExit
	const open, deny = protocol.DecisionOpen, protocol.DecisionDeny

	o, err := f.db.Occupancy(ctx, lot)
	if err != nil || o.Inside != 0 || o.UpdatedAt.IsZero() {
		t.Fatalf("new lot: %+v, %v", o, err)
	}
	entry := f.event(lot, in, open, "MÜ-AB 12")
	steps := []struct {
		name string
		e    *protocol.GateEvent
		want int
	}{
		{"EntryOpened", entry, 1},
		{"Redelivered", entry, 1},
		{"SamePlateAgain", f.event(lot, in, open, "MUAB12"), 1},
		{"Denied", f.event(lot, in, deny, "ZZ999"), 1},
		{"SecondPlate", f.event(lot, in, open, "CD456"), 2},
		{"OtherLot", f.event(other, in, open, "EF789"), 2},
		{"ExitDenied", f.event(lot, out, deny, "CD456"), 2},
		{"ExitOfPlateNotInside", f.event(lot, out, open, "XY111"), 2},
		{"ExitOpened", f.event(lot, out, open, "mu ab 12"), 1},
		{"ExitAgain", f.event(lot, out, open, "MUAB12"), 1},
	}
	last := o.UpdatedAt
	for _, s := range steps {
		before := f.inside(lot)
		f.ingest(s.e)
		if got := f.inside(lot); got != s.want {
			t.Fatalf("%s: %d inside, want %d", s.name, got, s.want)
		}
		o, _ := f.db.Occupancy(ctx, lot)
		if changed := s.want != before; changed != o.UpdatedAt.After(last) {
			t.Errorf("%s: updated_at %v after %v, count changed %v", s.name, o.UpdatedAt, last, changed)
		}
		last = o.UpdatedAt
	}
	reset := f.event(lot, in, open, "CD456")
	reset.Kind = protocol.KindReset
	f.ingest(reset)
	if got := f.inside(lot); got != 0 {
		t.Fatalf("after the edge's reset: %d inside", got)
	}

	f.ingest(f.event(lot, in, open, "GH321"))
	// The operator's reset (POST /v1/lots/{id}/presence/{plate}/reset)
	// forgets the plate in the cloud's count in the transaction that
	// sends the edges the command; a second one finds nothing to forget.
	for i := range 2 {
		if _, err := f.db.ResetPresence(ctx, cloud.PresenceReset{ID: uuid.NewString(), LotID: lot, Plate: "GH321"}); err != nil {
			t.Fatalf("reset presence %d: %v", i, err)
		}
		if got := f.inside(lot); got != 0 {
			t.Fatalf("after the operator's reset %d: %d inside", i, got)
		}
	}
	if got := f.inside(other); got != 1 {
		t.Fatalf("other lot: %d inside", got)
	}
	if _, err := f.db.Occupancy(ctx, uuid.NewString()); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
}

// TestLotState: closed wins, else full at inside >= total_spots.
func TestLotState(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		closed       bool
		inside, spot int
		want         string
	}{
		{false, 0, 2, cloud.LotOpen}, {false, 1, 2, cloud.LotOpen}, {false, 2, 2, cloud.LotFull},
		{false, 3, 2, cloud.LotFull}, {true, 0, 2, cloud.LotClosed}, {true, 2, 2, cloud.LotClosed},
	} {
		got := cloud.LotState(cloud.Lot{Closed: c.closed, TotalSpots: c.spot}, cloud.Occupancy{Inside: c.inside})
		if got != c.want {
			t.Errorf("closed %v, %d of %d inside: %s, want %s", c.closed, c.inside, c.spot, got, c.want)
		}
	}
}

// TestLotGateEventsOrder: events stored concurrently by several writers are
// read, page by page while they are written, each exactly once and in the
// order of their numbers: a lot's events commit in seq order.
func TestLotGateEventsOrder(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()
	const writers, each = 6, 40
	var wg sync.WaitGroup
	var ids sync.Map
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l := lot
				if i%5 == 0 {
					l = other
				}
				e := f.event(l, protocol.DirectionEntry, protocol.DecisionDeny, fmt.Sprintf("P%dX%d", w, i))
				if _, err := f.db.IngestGateEvent(ctx, e, cloud.Transition{}); err != nil {
					t.Error(err)
					return
				}
				if l == lot {
					ids.Store(e.EventID, true)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	var after int64
	finished := false
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case <-done:
			finished = true
		default:
		}
		page, err := f.db.LotGateEvents(ctx, lot, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.Seq <= after || e.LotID != lot || seen[e.EventID] {
				t.Fatalf("event %s seq %d after %d (lot %s, seen %v)", e.EventID, e.Seq, after, e.LotID, seen[e.EventID])
			}
			seen[e.EventID] = true
			after = e.Seq
		}
		if finished && len(page) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("paging did not finish")
		}
	}
	want := 0
	ids.Range(func(k, _ any) bool {
		want++
		if !seen[k.(string)] {
			t.Errorf("event %s never read", k)
		}
		return true
	})
	if len(seen) != want || want != writers*each*4/5 {
		t.Errorf("read %d events, stored %d, want %d", len(seen), want, writers*each*4/5)
	}
}

// TestLotReservationsKeyset: walking a lot's reservations page by page sees
// every reservation that existed when the walk began exactly once, newest
// first, while new ones are made; filters narrow it; the page query is an
// index range scan.
func TestLotReservationsKeyset(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()
	// Many reservations of one spot would overlap: give the lot spots.
	f.exec(`INSERT INTO spots (lot_id, label) SELECT $1, 'S' || g FROM generate_series(1, 400) g`, lot)
	insert := func(lot string, n int, status string, created string) {
		f.exec(`
			INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at,
			                          price_amount, currency, created_at)
			SELECT gen_random_uuid(), $1, s.id, 'PL' || (s.id % 50), now() + (s.id % 24) * interval '1 hour',
			       now() + (s.id % 24 + 1) * interval '1 hour', $3, now(), 300, 'EUR', `+created+`
			  FROM (SELECT id FROM spots WHERE lot_id = $1 ORDER BY id LIMIT $2) s`, lot, n, status)
	}
	// Created in bursts with equal created_at, so the id breaks ties.
	insert(lot, 150, "CONFIRMED", "date_trunc('minute', now()) - (s.id % 7) * interval '1 minute'")
	insert(other, 1, "CONFIRMED", "now()")
	var before []string
	rows, _ := f.db.Pool.Query(ctx, `SELECT id::text FROM reservations WHERE lot_id = $1`, lot)
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		before = append(before, id)
	}
	rows.Close()

	seen := map[string]int{}
	var after *cloud.ReservationCursor
	var prev *cloud.ReservationCursor
	pages := 0
	for {
		page, more, err := f.db.LotReservations(ctx, cloud.ReservationFilter{LotID: lot, Limit: 13, After: after})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page {
			c := &cloud.ReservationCursor{CreatedAt: r.CreatedAt, ID: r.ID}
			if prev != nil && !(c.CreatedAt.Before(prev.CreatedAt) || c.CreatedAt.Equal(prev.CreatedAt) && c.ID < prev.ID) {
				t.Fatalf("not newest first: %v after %v", c, prev)
			}
			prev = c
			seen[r.ID]++
		}
		// Made between pages (not active: the spots are taken): newer than
		// every cursor, so never on a later page.
		f.exec(`
			INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
			SELECT gen_random_uuid(), $1, s.id, 'NEW1', now() + interval '30 days', now() + interval '31 days', 'CANCELLED', now(), 300, 'EUR'
			  FROM spots s WHERE s.lot_id = $1 ORDER BY random() LIMIT 1`, lot)
		if !more {
			break
		}
		last := page[len(page)-1]
		// Through the opaque cursor, as a client passes it back.
		c, err := cloud.ParseReservationCursor(cloud.ReservationCursor{CreatedAt: last.CreatedAt, ID: last.ID}.String())
		if err != nil {
			t.Fatal(err)
		}
		after = &c
	}
	for _, id := range before {
		if seen[id] != 1 {
			t.Errorf("reservation %s seen %d times", id, seen[id])
		}
	}
	if len(seen) != len(before) || pages != (150+12)/13 {
		t.Errorf("saw %d reservations in %d pages, want %d in %d", len(seen), pages, len(before), (150+12)/13)
	}

	for _, c := range []struct {
		name string
		f    cloud.ReservationFilter
		sql  string
	}{
		{"Status", cloud.ReservationFilter{Status: cloud.StatusCancelled}, `status = 'CANCELLED'`},
		{"Plate", cloud.ReservationFilter{Plate: "PL7"}, `plate = 'PL7'`},
		{"Window", cloud.ReservationFilter{From: time.Now().Add(5 * time.Hour), To: time.Now().Add(8 * time.Hour)},
			`ends_at > now() + interval '5 hours' AND starts_at < now() + interval '8 hours'`},
	} {
		c.f.LotID, c.f.Limit = lot, 500
		page, more, err := f.db.LotReservations(ctx, c.f)
		want := f.queryInt(`SELECT count(*) FROM reservations WHERE lot_id = $1 AND `+c.sql, lot)
		if err != nil || more || int64(len(page)) != want || want == 0 {
			t.Errorf("%s: %d (more %v, %v), want %d", c.name, len(page), more, err, want)
		}
	}

	// The plan: an index range scan from the cursor, not a sort of the lot.
	f.exec(`ANALYZE reservations`)
	var plan []string
	rows, err := f.db.Pool.Query(ctx, `EXPLAIN SELECT id FROM reservations r WHERE r.lot_id = $1 AND r.extends_id IS NULL
		AND (r.created_at, r.id) < ($2, $3::uuid) ORDER BY r.created_at DESC, r.id DESC LIMIT 51`,
		lot, time.Now(), uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		_ = rows.Scan(&line)
		plan = append(plan, line)
	}
	rows.Close()
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "reservations_lot_created_idx") || !strings.Contains(text, "Index Cond") ||
		slices.ContainsFunc(plan, func(l string) bool { return strings.Contains(l, "Sort") }) {
		t.Errorf("the page query is not an index range scan:\n%s", text)
	}
	t.Logf("plan:\n%s", text)
}
