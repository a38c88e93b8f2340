package edge_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/protocol"
)

type agentBundle struct {
	agent *edge.Agent
	store *bolt.Store
	pins  map[string]*hwtest.Pin
	now   time.Time
}

// setupAgent builds an agent on a real store with fake barrier pins: entry-1
// and entry-2 (entry), exit-1 (exit). The clock stands at t0+1h.
func setupAgent(t *testing.T, link edge.Link) *agentBundle {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "edge.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b := &agentBundle{store: s, pins: map[string]*hwtest.Pin{}, now: t0.Add(time.Hour)}
	var gates []edge.GateConfig
	for _, g := range []edge.Gate{{ID: "entry-1", Direction: "entry"}, {ID: "entry-2", Direction: "entry"}, {ID: "exit-1", Direction: "exit"}} {
		pin := hwtest.NewPin(g.ID + ".barrier")
		barrier, err := hw.NewBarrier(pin, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b.pins[g.ID] = pin
		gates = append(gates, edge.GateConfig{Gate: g, Barrier: barrier})
	}
	b.agent, err = edge.NewAgent(edge.Config{LotID: "lot-1", Gates: gates, Store: s, Link: link, Policy: policy,
		Now: func() time.Time { return b.now }})
	if err != nil {
		t.Fatal(err)
	}
	change := func(seq int64, id, plate string) protocol.ReservationChange {
		return protocol.ReservationChange{V: 1, LotID: "lot-1", Seq: seq, Op: protocol.OpUpsert,
			Reservation: protocol.Reservation{ID: id, Plate: plate, StartsAt: t0, EndsAt: t1, Status: protocol.StatusConfirmed}}
	}
	if _, err := s.Apply([]protocol.ReservationChange{change(1, "r1", "AB123C"), change(2, "r2", "XY987"), change(3, "r3", "KL555")}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *agentBundle) read(t *testing.T, gate, plate string) edge.Result {
	t.Helper()
	res, err := b.agent.HandleRead(context.Background(), edge.PlateRead{GateID: gate, Plate: plate, Confidence: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (b *agentBundle) events(t *testing.T) []protocol.GateEvent {
	t.Helper()
	entries, err := b.store.Pending(1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []protocol.GateEvent
	for _, e := range entries {
		var ev protocol.GateEvent
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

type fakeLink struct{ connected bool }

func (l fakeLink) Connected() bool   { return l.connected }
func (l fakeLink) AppliedSeq() int64 { return 3 }

func TestAgent(t *testing.T) {
	t.Run("OpenPulsesBarrierAndRecordsEvent", func(t *testing.T) {
		b := setupAgent(t, fakeLink{connected: true})
		res := b.read(t, "entry-1", "ab-123 c")
		if !res.Open() || res.Reason != protocol.ReasonValid || res.ReservationID != "r1" || res.EventID == "" {
			t.Fatalf("result %+v", res)
		}
		if edges := b.pins["entry-1"].Edges(); len(edges) != 1 || edges[0].Level != gpio.High {
			t.Fatalf("barrier edges %v", edges)
		}
		evs := b.events(t)
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		ev := evs[0]
		if ev.EventID != res.EventID || ev.Kind != protocol.KindDecision || ev.LotID != "lot-1" || ev.GateID != "entry-1" ||
			ev.Direction != "entry" || ev.Plate != "AB123C" || ev.Decision != "open" || ev.ReservationID != "r1" ||
			ev.Offline || !ev.OccurredAt.Equal(b.now) || ev.Confidence != 0.95 || ev.Validate() != nil {
			t.Fatalf("event %+v", ev)
		}
	})
	t.Run("DenyLeavesBarrierAlone", func(t *testing.T) {
		b := setupAgent(t, nil)
		res := b.read(t, "entry-1", "NOPE12")
		if res.Open() || res.Reason != protocol.ReasonNoReservation {
			t.Fatalf("result %+v", res)
		}
		if edges := b.pins["entry-1"].Edges(); len(edges) != 0 {
			t.Fatalf("barrier moved on deny: %v", edges)
		}
		if evs := b.events(t); len(evs) != 1 || evs[0].Decision != "deny" || !evs[0].Offline {
			t.Fatalf("events %+v (no link means offline)", evs)
		}
	})
	t.Run("AntiPassbackAndReset", func(t *testing.T) {
		b := setupAgent(t, nil)
		b.read(t, "entry-1", "AB123C")
		if res := b.read(t, "entry-2", "AB123C"); res.Open() || res.Reason != protocol.ReasonAlreadyInside {
			t.Fatalf("second entry %+v", res)
		}
		reset, err := b.agent.ResetPresence(context.Background(), "ab123c", "")
		if err != nil || reset.ReservationID != "r1" {
			t.Fatalf("reset %+v %v", reset, err)
		}
		if res := b.read(t, "entry-2", "AB123C"); !res.Open() {
			t.Fatalf("entry after reset %+v", res)
		}
		evs := b.events(t)
		if len(evs) != 4 || evs[2].Kind != protocol.KindReset || evs[2].Reason != edge.ReasonPresenceReset || evs[2].GateID != "entry-1" {
			t.Fatalf("events %+v", evs)
		}
	})
	t.Run("ExitRecordsOverstay", func(t *testing.T) {
		b := setupAgent(t, nil)
		b.read(t, "entry-1", "XY987")
		b.now = t1.Add(policy.ExitGrace + 20*time.Minute)
		res := b.read(t, "exit-1", "XY987")
		if !res.Open() || res.Reason != protocol.ReasonInside || res.OverstayMinutes != 30 {
			t.Fatalf("exit %+v", res)
		}
		if evs := b.events(t); evs[1].OverstayMinutes != 30 || evs[1].Direction != "exit" {
			t.Fatalf("exit event %+v", evs[1])
		}
		if res := b.read(t, "entry-1", "XY987"); res.Reason != protocol.ReasonExpired {
			t.Fatalf("re-entry after leaving late %+v", res)
		}
	})
	t.Run("FuzzyReadRecorded", func(t *testing.T) {
		b := setupAgent(t, nil)
		res := b.read(t, "entry-1", "KL55") // missing last character
		if !res.Open() || !res.Fuzzy || res.Plate != "KL555" {
			t.Fatalf("fuzzy %+v", res)
		}
		if evs := b.events(t); !evs[0].Fuzzy || evs[0].Plate != "KL555" {
			t.Fatalf("event %+v", evs[0])
		}
		if res := b.read(t, "entry-1", "KL555"); res.Reason != protocol.ReasonAlreadyInside {
			t.Fatalf("exact read after fuzzy entry %+v", res)
		}
	})
	t.Run("OverrideOpensAndRecords", func(t *testing.T) {
		b := setupAgent(t, nil)
		res, err := b.agent.Override(context.Background(), "exit-1")
		if err != nil || !res.Open() || res.Reason != protocol.ReasonManualOverride {
			t.Fatalf("override %+v %v", res, err)
		}
		if b.pins["exit-1"].Read() != gpio.High {
			t.Fatal("override did not open the barrier")
		}
		if evs := b.events(t); len(evs) != 1 || evs[0].Kind != protocol.KindOverride || evs[0].Validate() != nil {
			t.Fatalf("events %+v", evs)
		}
	})
	t.Run("RemoteOpenRecordsReason", func(t *testing.T) {
		b := setupAgent(t, nil)
		res, err := b.agent.RemoteOpen(context.Background(), "entry-2", "driver at intercom, camera fogged")
		if err != nil || !res.Open() || res.Reason != protocol.ReasonManualOverride || res.Note == "" {
			t.Fatalf("remote open %+v %v", res, err)
		}
		if b.pins["entry-2"].Read() != gpio.High {
			t.Fatal("remote open did not open the barrier")
		}
		evs := b.events(t)
		if len(evs) != 1 || evs[0].Kind != protocol.KindOverride || evs[0].Decision != protocol.DecisionOpen ||
			evs[0].Note != "driver at intercom, camera fogged" || evs[0].GateID != "entry-2" || evs[0].Validate() != nil {
			t.Fatalf("events %+v", evs)
		}
		if _, err := b.agent.RemoteOpen(context.Background(), "side-door", "x"); edge.ErrorCode(err) != edge.ENotFound {
			t.Fatalf("unknown gate: %v", err)
		}
		if _, err := b.agent.RemoteOpen(context.Background(), "entry-1", ""); edge.ErrorCode(err) != edge.EInvalid {
			t.Fatalf("no reason: %v", err)
		}
	})
	t.Run("RemoteOpenCommand", func(t *testing.T) {
		b := setupAgent(t, nil)
		cmd := func(seq int64, gate string, notAfter time.Time) protocol.ReservationChange {
			return protocol.GateOpenChange("lot-1", seq, protocol.GateOpen{ID: "o", GateID: gate, Reason: "intercom: ticket lost",
				IssuedAt: b.now.Add(-time.Second), NotAfter: notAfter})
		}
		for _, tt := range []struct {
			name string
			c    protocol.ReservationChange
		}{
			{"too late", cmd(4, "entry-1", b.now.Add(-time.Millisecond))},
			{"another agent's gate", cmd(5, "side-door", b.now.Add(time.Minute))},
			{"a reservation", protocol.ReservationChange{V: 1, LotID: "lot-1", Seq: 6, Op: protocol.OpUpsert,
				Reservation: protocol.Reservation{ID: "r9", Plate: "ZZ99", StartsAt: t0, EndsAt: t1, Status: protocol.StatusConfirmed}}},
		} {
			if opened, err := b.agent.Command(context.Background(), tt.c); opened || err != nil {
				t.Errorf("%s: opened %v, %v", tt.name, opened, err)
			}
		}
		if b.pins["entry-1"].Read() == gpio.High || len(b.events(t)) != 0 {
			t.Fatal("a command that was not this agent's to carry out moved a barrier or recorded an event")
		}
		opened, err := b.agent.Command(context.Background(), cmd(7, "entry-1", b.now))
		if !opened || err != nil {
			t.Fatalf("remote open by its deadline: opened %v, %v", opened, err)
		}
		if b.pins["entry-1"].Read() != gpio.High {
			t.Fatal("the remote open did not open the barrier")
		}
		evs := b.events(t)
		if len(evs) != 1 || evs[0].Reason != protocol.ReasonManualOverride || evs[0].Note != "intercom: ticket lost" ||
			evs[0].GateID != "entry-1" || evs[0].Validate() != nil {
			t.Fatalf("events %+v", evs)
		}
	})
	t.Run("StaleReadDeniedAndRecorded", func(t *testing.T) {
		b := setupAgent(t, nil)
		res, err := b.agent.HandleRead(context.Background(), edge.PlateRead{GateID: "entry-1", Plate: "AB123C", Confidence: 0.95,
			CapturedAt: b.now.Add(-3 * time.Hour)})
		if err != nil || res.Open() || res.Reason != edge.ReasonStaleRead {
			t.Fatalf("stale read %+v %v", res, err)
		}
		if b.pins["entry-1"].Read() == gpio.High {
			t.Fatal("a stale read opened the barrier")
		}
		if evs := b.events(t); len(evs) != 1 || evs[0].Reason != edge.ReasonStaleRead || evs[0].Decision != protocol.DecisionDeny {
			t.Fatalf("events %+v", evs)
		}
		if res := b.read(t, "entry-1", "AB123C"); !res.Open() {
			t.Fatalf("a fresh read after the stale one: %+v", res)
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		b := setupAgent(t, nil)
		for _, tt := range []struct {
			read edge.PlateRead
			code string
		}{
			{edge.PlateRead{GateID: "nope", Plate: "AB123C", Confidence: 1}, edge.ENotFound},
			{edge.PlateRead{GateID: "entry-1", Plate: "AB$1", Confidence: 1}, edge.EInvalid},
			{edge.PlateRead{GateID: "entry-1", Plate: "AB123C", Confidence: 1.5}, edge.EInvalid},
		} {
			if _, err := b.agent.HandleRead(context.Background(), tt.read); edge.ErrorCode(err) != tt.code {
				t.Errorf("%+v: %v, want %s", tt.read, err, tt.code)
			}
		}
	})
	t.Run("ConcurrentEntriesOfOnePlate", func(t *testing.T) {
		// Two entry gates read the same plate at once (a cloned plate):
		// exactly one opens.
		b := setupAgent(t, nil)
		var wg sync.WaitGroup
		results := make([]edge.Result, 2)
		for i, g := range []string{"entry-1", "entry-2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], _ = b.agent.HandleRead(context.Background(), edge.PlateRead{GateID: g, Plate: "AB123C", Confidence: 0.9})
			}()
		}
		wg.Wait()
		if results[0].Open() == results[1].Open() {
			t.Fatalf("both or neither opened: %+v", results)
		}
	})
	t.Run("GatesState", func(t *testing.T) {
		b := setupAgent(t, fakeLink{connected: true})
		b.read(t, "entry-1", "AB123C")
		gs := b.agent.Gates()
		if len(gs) != 3 || gs[0].ID != "entry-1" || !gs[0].BarrierOpen || gs[0].LastDecision == nil || !gs[0].Online ||
			gs[0].SyncSeq != 3 || gs[1].BarrierOpen || gs[1].LastDecision != nil {
			t.Fatalf("gates %+v", gs)
		}
	})
}
