package bolt_test

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/protocol"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*bolt.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func reopen(t *testing.T, s *bolt.Store, path string) *bolt.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

func upsert(seq int64, id, plate string, start time.Time) protocol.ReservationChange {
	return protocol.ReservationChange{V: 1, LotID: "lot", Seq: seq, Op: protocol.OpUpsert,
		Reservation: protocol.Reservation{ID: id, Plate: plate, StartsAt: start, EndsAt: start.Add(time.Hour), Status: protocol.StatusConfirmed}}
}

func del(seq int64, id string) protocol.ReservationChange {
	return protocol.ReservationChange{V: 1, LotID: "lot", Seq: seq, Op: protocol.OpDelete, Reservation: protocol.Reservation{ID: id}}
}

func plates(states []edge.PlateState) []string {
	var out []string
	for _, s := range states {
		out = append(out, s.Plate)
	}
	sort.Strings(out)
	return out
}

func TestApplyAndLookup(t *testing.T) {
	s, path := setup(t)
	last, err := s.Apply([]protocol.ReservationChange{
		upsert(1, "r1", "AB-123 c", t0),
		upsert(2, "r2", "AB123C", t0.Add(24*time.Hour)),
		upsert(3, "r3", "A8123C", t0),
		upsert(4, "r4", "AB123", t0),
		upsert(5, "r5", "XY999", t0),
		{V: 1, LotID: "lot", Seq: 6, Op: protocol.OpUpsert, Reservation: protocol.Reservation{ID: "r6", Plate: "PENDING1",
			StartsAt: t0, EndsAt: t0.Add(time.Hour), Status: protocol.StatusPending}},
	})
	if err != nil || last != 6 {
		t.Fatalf("Apply = %d, %v", last, err)
	}

	t.Run("ExactWithSeveralReservations", func(t *testing.T) {
		v, err := s.Lookup("AB123C")
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Exact.Reservations) != 2 || v.Exact.Reservations[0].ID != "r1" || v.Exact.Reservations[1].ID != "r2" ||
			!v.Exact.Reservations[0].StartsAt.Equal(t0) || v.Exact.Reservations[0].Status != protocol.StatusConfirmed {
			t.Fatalf("exact = %+v", v.Exact)
		}
		if got := plates(v.Candidates); len(got) != 1 || got[0] != "A8123C" {
			t.Fatalf("candidates = %v", got)
		}
	})
	t.Run("LookalikeAndMissingLastChar", func(t *testing.T) {
		v, _ := s.Lookup("A81230") // C misread as 0 is no look-alike: only the truncated index can help, and it does not
		if len(v.Candidates) != 0 || v.Exact.Known() {
			t.Fatalf("A81230: %+v", v)
		}
		v, _ = s.Lookup("AB12") // a read of MinTruncatedRead characters may miss the last of five
		if got := plates(v.Candidates); len(got) != 1 || got[0] != "AB123" {
			t.Fatalf("AB12 candidates = %v", got)
		}
		v, _ = s.Lookup("AB1") // shorter reads are not looked up as truncated
		if len(v.Candidates) != 0 {
			t.Fatalf("AB1 candidates = %v", plates(v.Candidates))
		}
		v, _ = s.Lookup("A8123") // AB123 by look-alike; AB123C and A8123C by a missing last character
		if got := plates(v.Candidates); len(got) != 3 || got[0] != "A8123C" || got[1] != "AB123" || got[2] != "AB123C" {
			t.Fatalf("A8123 candidates = %v", got)
		}
		v, _ = s.Lookup("XY99")
		if got := plates(v.Candidates); len(got) != 1 || got[0] != "XY999" {
			t.Fatalf("XY99 candidates = %v", got)
		}
	})
	t.Run("OtherStatusesNotStored", func(t *testing.T) {
		if v, _ := s.Lookup("PENDING1"); v.Exact.Known() {
			t.Fatalf("pending reservation stored: %+v", v.Exact)
		}
	})
	t.Run("DeleteAndPlateChange", func(t *testing.T) {
		if _, err := s.Apply([]protocol.ReservationChange{del(7, "r3"), upsert(8, "r5", "XY998", t0)}); err != nil {
			t.Fatal(err)
		}
		v, _ := s.Lookup("AB123C")
		if len(v.Candidates) != 0 {
			t.Fatalf("deleted r3 still a candidate: %v", plates(v.Candidates))
		}
		if v, _ := s.Lookup("XY999"); v.Exact.Known() {
			t.Fatalf("XY999 kept after its reservation moved to XY998: %+v", v)
		}
		if v, _ := s.Lookup("XY998"); len(v.Exact.Reservations) != 1 || v.Exact.Reservations[0].ID != "r5" {
			t.Fatalf("XY998 after plate change: %+v", v)
		}
		if v, _ := s.Lookup("XY99"); len(v.Candidates) != 1 || v.Candidates[0].Plate != "XY998" {
			t.Fatalf("truncated index not moved with the plate: %v", plates(v.Candidates))
		}
	})
	t.Run("DuplicatesSkippedGapRefused", func(t *testing.T) {
		if last, err := s.Apply([]protocol.ReservationChange{upsert(3, "zz", "ZZ111", t0)}); err != nil || last != 8 {
			t.Fatalf("duplicate: %d %v", last, err)
		}
		if v, _ := s.Lookup("ZZ111"); v.Exact.Known() {
			t.Fatal("old seq applied")
		}
		if _, err := s.Apply([]protocol.ReservationChange{upsert(9, "a", "AA111", t0), upsert(11, "b", "BB111", t0)}); err == nil {
			t.Fatal("gap accepted")
		}
		if v, _ := s.Lookup("AA111"); v.Exact.Known() {
			t.Fatal("a failed Apply left part of its changes")
		}
		if seq, _ := s.LastSeq(); seq != 8 {
			t.Fatalf("LastSeq = %d", seq)
		}
	})
	t.Run("ReopenKeepsEverything", func(t *testing.T) {
		s2 := reopen(t, s, path)
		if seq, _ := s2.LastSeq(); seq != 8 {
			t.Fatalf("LastSeq after reopen = %d", seq)
		}
		if v, _ := s2.Lookup("AB123C"); len(v.Exact.Reservations) != 2 {
			t.Fatalf("after reopen: %+v", v.Exact)
		}
	})
}

func event(id, gate string) protocol.GateEvent {
	return protocol.GateEvent{V: 1, EventID: id, LotID: "lot", GateID: gate, Direction: "entry",
		Decision: "open", Reason: "valid", OccurredAt: t0}
}

func TestPresenceAndOutbox(t *testing.T) {
	s, path := setup(t)
	enter := edge.PresenceChange{Op: edge.PresenceEnter, Plate: "AB123C",
		Presence: edge.Presence{Plate: "AB123C", ReservationID: "r1", GateID: "entry-1", EnteredAt: t0, EndsAt: t0.Add(time.Hour)}}
	done := s.Record(edge.Record{Event: event("e1", "entry-1"), Presence: enter})
	// Visible before the commit: the next read of this plate must see it.
	if v, _ := s.Lookup("AB123C"); v.Exact.Presence == nil || v.Exact.Presence.ReservationID != "r1" {
		t.Fatalf("presence not visible at once: %+v", v.Exact)
	}
	if v, _ := s.Lookup("A8123C"); len(v.Candidates) != 1 || v.Candidates[0].Presence == nil {
		t.Fatalf("presence-only plate not found by a look-alike read: %+v", v)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-s.Record(edge.Record{Event: event("e2", "exit-1")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Signal():
	default:
		t.Fatal("no outbox signal after commit")
	}
	s = reopen(t, s, path)
	if p := s.Presence()["AB123C"]; p.ReservationID != "r1" || !p.EnteredAt.Equal(t0) {
		t.Fatalf("presence after reopen: %+v", p)
	}
	entries, err := s.Pending(10)
	if err != nil || len(entries) != 2 || s.Depth() != 2 {
		t.Fatalf("Pending = %v, %v, depth %d", entries, err, s.Depth())
	}
	if entries[0].EventID != "e1" || entries[0].GateID != "entry-1" || entries[1].EventID != "e2" || entries[0].Key >= entries[1].Key {
		t.Fatalf("entries out of order: %+v", entries)
	}
	if err := s.Ack([]uint64{entries[0].Key, 999}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := s.Pending(10); len(entries) != 1 || entries[0].EventID != "e2" || s.Depth() != 1 {
		t.Fatalf("after Ack: %+v depth %d", entries, s.Depth())
	}
	if err := <-s.Record(edge.Record{Event: event("e3", "entry-1"), Presence: edge.PresenceChange{Op: edge.PresenceLeave, Plate: "AB123C"}}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	if len(s.Presence()) != 0 || s.Depth() != 2 {
		t.Fatalf("after leave and reopen: presence %v depth %d", s.Presence(), s.Depth())
	}
}

func TestRecordAfterClose(t *testing.T) {
	s, _ := setup(t)
	_ = s.Close()
	if err := <-s.Record(edge.Record{Event: event("e", "g")}); err != bolt.ErrClosed {
		t.Fatalf("Record after Close: %v", err)
	}
}
