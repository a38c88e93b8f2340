package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/protocol"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusPending, "AB123C", 0)
	f.exec(`SELECT * FROM parkgate_change($1, '{PENDING}', 'CONFIRMED')`, res)
	e := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "g1",
		Direction: protocol.DirectionEntry, Plate: "AB123C", Confidence: 0.9, Decision: protocol.DecisionOpen,
		Reason: "reservation", ReservationID: res, OccurredAt: time.Now(), DecidedInUs: 40}
	if _, err := f.db.IngestGateEvent(ctx, e,
		cloud.Transition{From: []cloud.Status{cloud.StatusConfirmed}, To: cloud.StatusCheckedIn}); err != nil {
		t.Fatal(err)
	}

	rs, err := f.db.AllReservations(ctx)
	if err != nil || len(rs) != 1 || rs[0].ID != res || rs[0].LotID != lot || rs[0].Status != protocol.StatusCheckedIn ||
		rs[0].Plate != "AB123C" || rs[0].SpotID == 0 {
		t.Errorf("reservations: %+v, %v", rs, err)
	}
	cs, err := f.db.AllChanges(ctx)
	if err != nil || len(cs) != 2 || cs[0].Seq != 1 || cs[1].Status != protocol.StatusCheckedIn || cs[1].ReservationID != res {
		t.Errorf("changes: %+v, %v", cs, err)
	}
	// A remote open carries the operator's reason as its note, which the
	// audit shows; a plate decision has none.
	open := &protocol.GateEvent{V: protocol.Version, EventID: uuid.NewString(), LotID: lot, GateID: "g1",
		Direction: protocol.DirectionEntry, Decision: protocol.DecisionOpen, Reason: protocol.ReasonManualOverride,
		OccurredAt: e.OccurredAt.Add(time.Second), Note: "barrier stuck; driver at the intercom"}
	if _, err := f.db.IngestGateEvent(ctx, open, cloud.Transition{}); err != nil {
		t.Fatal(err)
	}
	gs, err := f.db.AllGateEvents(ctx)
	if err != nil || len(gs) != 2 || gs[0].EventID != e.EventID || gs[0].ReservationID != res || gs[0].Kind != protocol.KindDecision ||
		gs[0].Note != "" {
		t.Errorf("gate events: %+v, %v", gs, err)
	}
	if len(gs) == 2 && (gs[1].EventID != open.EventID || gs[1].Reason != protocol.ReasonManualOverride || gs[1].Note != open.Note) {
		t.Errorf("remote open in the audit: %+v; want its note %q", gs[1], open.Note)
	}
	ids, err := f.db.GateEventIDs(ctx)
	if err != nil || len(ids) != 2 || !ids[e.EventID] {
		t.Errorf("gate event ids: %v, %v", ids, err)
	}
	seqs, err := f.db.LotSeqs(ctx)
	if err != nil || seqs[lot] != 2 {
		t.Errorf("lot seqs: %v, %v", seqs, err)
	}
	if st, err := f.db.ReservationStatus(ctx, res); err != nil || st != protocol.StatusCheckedIn {
		t.Errorf("status: %q, %v", st, err)
	}
	if st, err := f.db.ReservationStatus(ctx, uuid.NewString()); err != nil || st != "" {
		t.Errorf("status of no reservation: %q, %v", st, err)
	}
}

// TestAuditExtension: an extension is traceable in the audit: its own row
// names the booking it extends, and the change that merged it carries the
// booking's new window, after the one the booking had before.
func TestAuditExtension(t *testing.T) {
	t.Parallel()
	f := setupEdge(t)
	ctx := context.Background()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusPending, "EXT1A", 1)
	f.exec(`SELECT * FROM parkgate_change($1, '{PENDING}', 'CONFIRMED')`, res)
	r, err := f.db.Reservation(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	newEnd := r.EndsAt.Add(30 * time.Minute)
	ext := uuid.NewString()
	h, err := f.db.HoldExtension(ctx, cloud.ExtensionParams{ID: ext, ParentID: res, From: r.EndsAt, EndsAt: newEnd,
		HoldTTL: 10 * time.Minute, Price: cloud.Money{Amount: 150, Currency: "EUR"}, Key: "ext-" + ext,
		RequestHash: []byte("h"), Lease: time.Minute, Now: time.Now()})
	if err != nil || h.Outcome != cloud.ExtensionHeld {
		t.Fatalf("hold extension: %+v, %v", h, err)
	}
	if out, _, err := f.db.Extend(ctx, ext, "pi_ext", time.Now()); err != nil || out != "extended" {
		t.Fatalf("extend: %q, %v", out, err)
	}

	rs, err := f.db.AllReservations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for _, x := range rs {
		links[x.ID] = x.ExtendsID
	}
	if len(rs) != 2 || links[ext] != res || links[res] != "" {
		t.Errorf("extends ids: %v; want %s → %s and the booking itself none", links, ext, res)
	}
	cs, err := f.db.AllChanges(ctx)
	if err != nil || len(cs) != 2 {
		t.Fatalf("changes: %+v, %v", cs, err)
	}
	first, merged := cs[0], cs[1]
	if first.ReservationID != res || !first.EndsAt.Equal(r.EndsAt) || !first.StartsAt.Equal(r.StartsAt) || first.Op != "upsert" {
		t.Errorf("confirmation's change: %+v; want the booking's first window [%s, %s)", first, r.StartsAt, r.EndsAt)
	}
	if merged.ReservationID != res || !merged.EndsAt.Equal(newEnd) || merged.Status != protocol.StatusConfirmed || merged.Op != "upsert" {
		t.Errorf("merge's change: %+v; want the booking with ends_at %s", merged, newEnd)
	}
}

// TestAuditHoldPlace: a PENDING hold's place in its lot's history comes
// from its own row (migration 027), among the silent changes drawn after
// it: a hold, then its expiry and the hold that expired it, a hold and
// its cancellation, in the order made. And its window is the one it was
// held with, not the end its paid extensions have moved the booking's row
// to since, so the audit judges the hold by what it held then.
func TestAuditHoldPlace(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	lot := eurLot(t, s, "H", "A")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	hold := func(key string, from time.Time) string { return held(t, s, lot, key, from) }

	booked := hold("booked", start)
	if _, err := s.DB.Pool.Exec(ctx, `SELECT * FROM parkgate_confirm_holds(ARRAY[$1]::uuid[], ARRAY['pi_1'], ARRAY[NULL]::timestamptz[])`,
		booked); err != nil {
		t.Fatal(err)
	}
	end := start.Add(time.Hour)
	for i, to := range []time.Time{end.Add(30 * time.Minute), end.Add(time.Hour)} {
		from := end.Add(time.Duration(i) * 30 * time.Minute)
		ext := uuid.NewString()
		h, err := s.DB.HoldExtension(ctx, cloud.ExtensionParams{ID: ext, ParentID: booked, From: from, EndsAt: to,
			HoldTTL: 10 * time.Minute, Price: cloud.Money{Amount: 50, Currency: "EUR"}, Key: "ext-" + ext,
			RequestHash: []byte("h"), Lease: time.Minute, Now: time.Now()})
		if err != nil || h.Outcome != cloud.ExtensionHeld {
			t.Fatalf("hold extension %d: %+v, %v", i, h, err)
		}
		if out, _, err := s.DB.Extend(ctx, ext, "pi_ext", time.Now()); err != nil || out != "extended" {
			t.Fatalf("extend %d: %q, %v", i, out, err)
		}
	}

	later := start.Add(5 * time.Hour)
	lapsed := hold("lapsed", later)
	endedAgo(t, s, lapsed, time.Minute)
	over := hold("over", later) // expires the lapsed one: a silent_changes row
	// A cancellation in a transaction of its own (parkgate_cancel) draws
	// its silent row after the hold's place.
	dropped := hold("dropped", later.Add(5*time.Hour))
	if out, _, err := s.DB.Cancel(ctx, dropped, time.Now()); err != nil || out != cloud.CancelDoneSilent {
		t.Fatalf("cancel the hold: %q, %v", out, err)
	}

	cs, err := s.DB.AllChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		seq          int64
		silent       bool
		res          string
		status       protocol.Status
		starts, ends string
	}
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	last := later.Add(5 * time.Hour)
	want := []change{
		{0, true, booked, protocol.StatusPending, at(start), at(end)},
		{1, false, booked, protocol.StatusConfirmed, at(start), at(end)},
		{2, false, booked, protocol.StatusConfirmed, at(start), at(end.Add(30 * time.Minute))},
		{3, false, booked, protocol.StatusConfirmed, at(start), at(end.Add(time.Hour))},
		{3, true, lapsed, protocol.StatusPending, at(later), at(later.Add(time.Hour))},
		{3, true, lapsed, protocol.StatusExpired, at(later), at(later.Add(time.Hour))},
		{3, true, over, protocol.StatusPending, at(later), at(later.Add(time.Hour))},
		{3, true, dropped, protocol.StatusPending, at(last), at(last.Add(time.Hour))},
		{3, true, dropped, protocol.StatusCancelled, at(last), at(last.Add(time.Hour))},
	}
	rs, err := s.DB.AllReservations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]time.Time{}
	for _, r := range rs {
		made[r.ID] = r.CreatedAt
	}
	var got []change
	for _, c := range cs {
		got = append(got, change{c.Seq, c.Silent != 0, c.ReservationID, c.Status, at(c.StartsAt), at(c.EndsAt)})
		if c.Silent == 0 && c.Op == "" || c.Silent != 0 && c.Op != "" {
			t.Errorf("change %+v: a log's change has an op, a silent one none", c)
		}
		// no_overlap dates a change by CreatedAt: a hold's is when it was
		// made, not when its row last changed.
		if c.Status == protocol.StatusPending && !c.CreatedAt.Equal(made[c.ReservationID]) {
			t.Errorf("hold %s placed at %s, made at %s", c.ReservationID, c.CreatedAt, made[c.ReservationID])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("history:\n got %+v\nwant %+v", got, want)
	}
	// The places are in the order the lot's lock was taken only while
	// the sequence hands its numbers out one at a time (no cache per
	// session), and only if it is the one silent_changes draws from.
	var cache int64
	var same bool
	if err := s.DB.Pool.QueryRow(ctx, `SELECT q.cache_size,
		pg_get_serial_sequence('silent_changes', 'id') = quote_ident(current_schema()) || '.silent_changes_id_seq'
		FROM pg_sequences q WHERE q.schemaname = current_schema() AND q.sequencename = 'silent_changes_id_seq'`).Scan(&cache, &same); err != nil ||
		cache != 1 || !same {
		t.Errorf("silent_changes_id_seq: cache %d, silent_changes' own %t (%v); want 1, true", cache, same, err)
	}
	var own int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM silent_changes WHERE status = 'PENDING'`).Scan(&own); err != nil || own != 0 {
		t.Errorf("%d PENDING holds in silent_changes (%v): their places are on their rows", own, err)
	}
}
