package bolt_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

func permitChange(seq int64, op protocol.Op, id, plate string) protocol.ReservationChange {
	return protocol.PermitChange("lot", seq, op, protocol.Permit{ID: id, Plate: plate,
		ValidFrom: t0, ValidUntil: t0.Add(30 * 24 * time.Hour)})
}

func resetChange(seq int64, plate string, issued time.Time) protocol.ReservationChange {
	return protocol.PresenceResetChange("lot", seq, protocol.PresenceReset{ID: "x", Plate: plate, IssuedAt: issued})
}

func enter(t *testing.T, s interface {
	Record(edge.Record) <-chan error
}, id, plate string, at time.Time) {
	t.Helper()
	pc := edge.PresenceChange{Op: edge.PresenceEnter, Plate: plate,
		Presence: edge.Presence{Plate: plate, PermitID: "p", GateID: "entry-1", EnteredAt: at}}
	if err := <-s.Record(edge.Record{Event: event(id, "entry-1"), Presence: pc}); err != nil {
		t.Fatal(err)
	}
}

// TestPermits: permits are stored by plate, several per plate, found by a
// look-alike read, replaced by an upsert, gone after a revoke — on disk,
// across a reopen — and a reservation of the same plate is untouched.
func TestPermits(t *testing.T) {
	t.Parallel()
	s, path := setup(t)
	last, err := s.Apply([]protocol.ReservationChange{
		permitChange(1, protocol.OpUpsert, "p1", "MÜ-AB 12"),
		permitChange(2, protocol.OpUpsert, "p2", "MUAB12"),
		upsert(3, "r1", "MUAB12", t0),
		permitChange(4, protocol.OpUpsert, "p3", "ZZ999"),
	})
	if err != nil || last != 4 {
		t.Fatalf("Apply = %d, %v", last, err)
	}
	v, _ := s.Lookup("MUAB12")
	if len(v.Exact.Permits) != 2 || v.Exact.Permits[0].Plate != "MUAB12" || len(v.Exact.Reservations) != 1 {
		t.Fatalf("exact: %+v", v.Exact)
	}
	if v, _ := s.Lookup("MUA812"); len(v.Candidates) != 1 || len(v.Candidates[0].Permits) != 2 {
		t.Fatalf("look-alike read: %+v", v)
	}

	// p1 moves to another plate; p2 is revoked; the reservation stays.
	if _, err := s.Apply([]protocol.ReservationChange{
		permitChange(5, protocol.OpUpsert, "p1", "CD345"),
		permitChange(6, protocol.OpDelete, "p2", ""),
	}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	if v, _ := s.Lookup("MUAB12"); len(v.Exact.Permits) != 0 || len(v.Exact.Reservations) != 1 {
		t.Fatalf("after move and revoke: %+v", v.Exact)
	}
	if v, _ := s.Lookup("CD345"); len(v.Exact.Permits) != 1 || v.Exact.Permits[0].ID != "p1" ||
		!v.Exact.Permits[0].ValidUntil.Equal(t0.Add(30*24*time.Hour)) {
		t.Fatalf("moved permit: %+v", v.Exact)
	}
	// The last permit of a plate revoked: a look-alike read finds nothing.
	if _, err := s.Apply([]protocol.ReservationChange{permitChange(7, protocol.OpDelete, "p3", "")}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Lookup("2Z999"); v.Exact.Known() || len(v.Candidates) != 0 {
		t.Fatalf("revoked permit still found: %+v", v)
	}
}

// TestPresenceResetFromCloud: a reset clears a presence recorded before it
// was issued, on disk too, once; an entry recorded after it was issued
// stands; a reset of a plate not inside changes nothing but the seq.
func TestPresenceResetFromCloud(t *testing.T) {
	t.Parallel()
	s, path := setup(t)
	enter(t, s, "e1", "AB123C", t0)
	enter(t, s, "e2", "CD345", t0.Add(2*time.Hour))
	last, err := s.Apply([]protocol.ReservationChange{
		resetChange(1, "AB-123 C", t0.Add(time.Hour)), // after AB123C entered
		resetChange(2, "CD345", t0.Add(time.Hour)),    // before CD345 entered
		resetChange(3, "EF678", t0.Add(time.Hour)),    // not inside
	})
	if err != nil || last != 3 {
		t.Fatalf("Apply = %d, %v", last, err)
	}
	if _, in := s.Presence()["AB123C"]; in {
		t.Error("AB123C still inside after the reset")
	}
	if _, in := s.Presence()["CD345"]; !in {
		t.Error("an entry after the reset was issued was wiped")
	}
	s = reopen(t, s, path)
	if _, in := s.Presence()["AB123C"]; in {
		t.Error("AB123C inside again after reopen: the reset did not reach the disk")
	}
	if _, in := s.Presence()["CD345"]; !in {
		t.Error("CD345 lost after reopen")
	}
	// Applied once: the same seq again changes nothing, even for a plate
	// that entered since.
	enter(t, s, "e3", "AB123C", t0.Add(30*time.Minute))
	if last, err := s.Apply([]protocol.ReservationChange{resetChange(1, "AB123C", t0.Add(time.Hour))}); err != nil || last != 3 {
		t.Fatalf("replayed reset: %d, %v", last, err)
	}
	if _, in := s.Presence()["AB123C"]; !in {
		t.Error("a replayed reset was applied twice")
	}
}

// TestApplyUnknownKind: a change of a kind or op the store does not know
// moves the seq and nothing else, and the changes after it apply.
func TestApplyUnknownKind(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	future := protocol.ReservationChange{V: 1, LotID: "lot", Seq: 1, Kind: "tariff", Op: "set", Data: map[string]string{"amount": "1"}}
	oddOp := permitChange(2, "suspend", "p1", "AB123C")
	last, err := s.Apply([]protocol.ReservationChange{future, oddOp, upsert(3, "r1", "AB123C", t0)})
	if err != nil || last != 3 {
		t.Fatalf("Apply = %d, %v", last, err)
	}
	v, _ := s.Lookup("AB123C")
	if len(v.Exact.Permits) != 0 || len(v.Exact.Reservations) != 1 {
		t.Fatalf("after unknown changes: %+v", v.Exact)
	}
}
