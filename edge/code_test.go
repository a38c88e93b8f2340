package edge_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/protocol"
)

const (
	codeLot   = "0b9e5f2a-9876-4fed-bcba-fedcba987654"
	codeRes   = "6f1c3e44-1234-4abc-8def-0123456789ab"
	codeOther = "6f1c3e44-1234-4abc-8def-0123456789ac"
)

func claim(mod func(*protocol.AccessCode)) *protocol.AccessCode {
	c := protocol.AccessCode{ReservationID: codeRes, LotID: codeLot, Plate: "AB123C", StartsAt: t0, EndsAt: t1}
	if mod != nil {
		mod(&c)
	}
	return &c
}

// TestDecideCode: a verified code opens like a read of its plate, for its
// own reservation only, and only while the store holds it.
func TestDecideCode(t *testing.T) {
	res := edge.Reservation{ID: codeRes, Plate: "AB123C", StartsAt: t0, EndsAt: t1, Status: protocol.StatusConfirmed}
	other := edge.Reservation{ID: codeOther, Plate: "AB123C", StartsAt: t0, EndsAt: t1, Status: protocol.StatusConfirmed}
	stored := edge.View{Exact: edge.PlateState{Plate: "AB123C", Reservations: []edge.Reservation{res}}}
	inside := edge.View{Exact: edge.PlateState{Plate: "AB123C", Reservations: []edge.Reservation{res},
		Presence: &edge.Presence{Plate: "AB123C", ReservationID: codeRes, EndsAt: t1}}}
	insideGone := edge.View{Exact: edge.PlateState{Plate: "AB123C",
		Presence: &edge.Presence{Plate: "AB123C", ReservationID: codeRes, EndsAt: t1}}}
	onlyOther := edge.View{Exact: edge.PlateState{Plate: "AB123C", Reservations: []edge.Reservation{other}}}
	during := t0.Add(time.Hour)
	cases := []struct {
		name       string
		dir        string
		code       *protocol.AccessCode
		view       edge.View
		now        time.Time
		wantOpen   bool
		wantReason string
	}{
		{"Valid", "entry", claim(nil), stored, during, true, protocol.ReasonValid},
		{"Forged", "entry", nil, stored, during, false, edge.ReasonInvalidCode},
		{"OtherLot", "entry", claim(func(c *protocol.AccessCode) { c.LotID = codeOther }), stored, during, false, edge.ReasonInvalidCode},
		{"TooEarly", "entry", claim(nil), stored, t0.Add(-time.Hour), false, protocol.ReasonTooEarly},
		{"Expired", "entry", claim(nil), stored, t1, false, protocol.ReasonExpired},
		{"ExpiredNotStored", "entry", claim(nil), edge.View{}, t1.Add(time.Hour), false, protocol.ReasonExpired},
		{"CancelledSynced", "entry", claim(nil), edge.View{}, during, false, protocol.ReasonNoReservation},
		{"OtherBookingOfPlate", "entry", claim(nil), onlyOther, during, false, protocol.ReasonNoReservation},
		{"AlreadyInside", "entry", claim(nil), inside, during, false, protocol.ReasonAlreadyInside},
		{"ExitInside", "exit", claim(nil), inside, during, true, protocol.ReasonInside},
		{"ExitInsideAfterCancel", "exit", claim(nil), insideGone, during, true, protocol.ReasonInside},
		{"ExitNotInsideValid", "exit", claim(nil), stored, during, true, protocol.ReasonValid},
		{"ExitForged", "exit", nil, inside, during, false, edge.ReasonInvalidCode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := edge.DecideCode(edge.CodeRead{GateID: "g", Direction: tc.dir, Code: tc.code}, codeLot, tc.view, tc.now, policy)
			if d.Open() != tc.wantOpen || d.Reason != tc.wantReason {
				t.Errorf("got %s %s, want open=%v %s", d.Decision, d.Reason, tc.wantOpen, tc.wantReason)
			}
		})
	}
}

// TestAgentCode: a code at the gate opens once (anti-passback), is
// recorded as an event, and stops opening once the cancellation is synced.
func TestAgentCode(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s, err := bolt.Open(filepath.Join(t.TempDir(), "edge.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var gates []edge.GateConfig
	for _, g := range []edge.Gate{{ID: "entry-1", Direction: "entry"}, {ID: "entry-2", Direction: "entry"}} {
		b, err := hw.NewBarrier(hwtest.NewPin(g.ID+".barrier"), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		gates = append(gates, edge.GateConfig{Gate: g, Barrier: b})
	}
	now := t0.Add(time.Hour)
	a, err := edge.NewAgent(edge.Config{LotID: codeLot, Gates: gates, Store: s, Policy: policy,
		Now: func() time.Time { return now }, CloudKeys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	change := func(seq int64, id string, op protocol.Op, st protocol.Status) protocol.ReservationChange {
		return protocol.ReservationChange{V: 1, LotID: codeLot, Seq: seq, Op: op,
			Reservation: protocol.Reservation{ID: id, Plate: "AB123C", StartsAt: t0, EndsAt: t1, Status: st}}
	}
	if _, err := s.Apply([]protocol.ReservationChange{
		change(1, codeRes, protocol.OpUpsert, protocol.StatusConfirmed),
		change(2, codeOther, protocol.OpUpsert, protocol.StatusConfirmed),
	}); err != nil {
		t.Fatal(err)
	}
	code := func(id string) string {
		c, err := claim(func(c *protocol.AccessCode) { c.ReservationID = id }).Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	show := func(gate, c string) edge.Result {
		t.Helper()
		res, err := a.HandleCode(context.Background(), gate, c)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := show("entry-1", code(codeRes)); !r.Open() || r.ReservationID != codeRes || r.Plate != "AB123C" {
		t.Fatalf("first show: %+v", r)
	}
	if r := show("entry-2", code(codeRes)); r.Open() || r.Reason != protocol.ReasonAlreadyInside {
		t.Errorf("second car on the same booking: %+v", r)
	}
	forged := []byte(code(codeRes))
	forged[len(forged)-2] ^= 1
	if r := show("entry-1", string(forged)); r.Open() || r.Reason != edge.ReasonInvalidCode {
		t.Errorf("forged: %+v", r)
	}
	if _, err := s.Apply([]protocol.ReservationChange{change(3, codeOther, protocol.OpDelete, protocol.StatusCancelled)}); err != nil {
		t.Fatal(err)
	}
	if r := show("entry-2", code(codeOther)); r.Open() || r.Reason != protocol.ReasonNoReservation {
		t.Errorf("cancelled and synced: %+v", r)
	}
	if _, err := a.HandleCode(context.Background(), "nope", code(codeRes)); err == nil {
		t.Errorf("unknown gate accepted")
	}
	entries, err := s.Pending(100)
	if err != nil || len(entries) != 4 {
		t.Errorf("%d events recorded, %v; want 4", len(entries), err)
	}
}

// TestExitAfterExtension: a car that entered before its booking was
// extended leaves by the new end without an overstay: the store's ends_at
// counts, not the one recorded at entry.
func TestExitAfterExtension(t *testing.T) {
	p := edge.Policy{ExitGrace: 10 * time.Minute, MinConfidence: 0.8, Pulse: time.Second}
	ext := edge.Reservation{ID: "r1", Plate: "AB123C", StartsAt: t0, EndsAt: t1.Add(time.Hour), Status: protocol.StatusCheckedIn}
	v := edge.View{Exact: edge.PlateState{Plate: "AB123C", Reservations: []edge.Reservation{ext},
		Presence: &edge.Presence{Plate: "AB123C", ReservationID: "r1", EndsAt: t1}}}
	read := edge.PlateRead{GateID: "exit-1", Direction: "exit", Plate: "AB123C", Confidence: 0.9}
	if d := edge.Decide(read, v, t1.Add(30*time.Minute), p); !d.Open() || d.OverstayMinutes != 0 {
		t.Errorf("within the extension: %+v", d)
	}
	if d := edge.Decide(read, v, t1.Add(80*time.Minute), p); !d.Open() || d.OverstayMinutes != 20 {
		t.Errorf("past the extension and its grace: %+v", d)
	}
}
