package mqttlink_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

// reader makes plate reads at an agent and checks what they decide.
func reader(t *testing.T, a *edge.Agent) func(gate, plate, decision, reason string) edge.Result {
	return func(gate, plate, decision, reason string) edge.Result {
		t.Helper()
		res, err := a.HandleRead(context.Background(), edge.PlateRead{GateID: gate, Plate: plate, Confidence: 0.95})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision.Decision != decision || res.Reason != reason {
			t.Fatalf("%s %s: %s/%s, want %s/%s", gate, plate, res.Decision.Decision, res.Reason, decision, reason)
		}
		return res
	}
}

// TestPermitsAndResetsOverTheStream walks a permit holder through the
// lot's change stream with a real broker: the synced permit opens (reason
// permit, no reservation) under anti-passback, also while the edge is
// offline; a presence reset issued while the edge is offline reaches it
// once it is back and lets the car in again, once; a revoke stops the
// permit opening, offline too.
func TestPermitsAndResetsOverTheStream(t *testing.T) {
	b := setup(t, "", nil)
	px := newProxy(t, b.broker.Addr())
	b.cfg.Brokers = []string{px.url()}
	cloudHTTP := newFakeCloud(t, "edge-secret")
	b.cfg.CloudURL, b.cfg.Token = cloudHTTP.srv.URL, "edge-secret"
	b.cfg.CatchUpInterval = time.Hour // offline means offline: no HTTP catch-up meanwhile
	l := b.start(t)
	a, _ := newAgent(t, b, l)
	read := reader(t, a)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	send := func(c protocol.ReservationChange) protocol.ReservationChange {
		c.Sign(b.key)
		cloudHTTP.add(c)
		publish(t, cloud, protocol.ReservationsTopic(lot), c)
		return c
	}

	pm := protocol.Permit{ID: "p1", Plate: "PM-123", ValidFrom: t0.Add(-time.Hour), ValidUntil: t0.Add(30 * 24 * time.Hour)}
	send(protocol.PermitChange(lot, 1, protocol.OpUpsert, pm))
	b.applied.wait(t, 1, 10*time.Second)
	if res := read("entry-1", "PM123", protocol.DecisionOpen, protocol.ReasonPermit); res.ReservationID != "" {
		t.Fatalf("permit open carries reservation %q", res.ReservationID)
	}
	read("entry-1", "PM123", protocol.DecisionDeny, protocol.ReasonAlreadyInside)
	read("exit-1", "PM123", protocol.DecisionOpen, protocol.ReasonInside)

	// Offline, the synced permit opens as before.
	px.cut()
	waitFor(t, 10*time.Second, "link down", func() bool { return !l.Connected() })
	read("entry-1", "PM123", protocol.DecisionOpen, protocol.ReasonPermit)
	// The exit read is missed; the operator resets the plate from the
	// cloud while the edge is still offline.
	reset := send(protocol.PresenceResetChange(lot, 2, protocol.PresenceReset{ID: "x1", Plate: "PM123", IssuedAt: time.Now()}))
	read("entry-1", "PM123", protocol.DecisionDeny, protocol.ReasonAlreadyInside)

	px.restore(t)
	b.applied.wait(t, 2, 30*time.Second)
	read("entry-1", "PM123", protocol.DecisionOpen, protocol.ReasonPermit)
	// Once: the same reset delivered again changes nothing.
	publish(t, cloud, protocol.ReservationsTopic(lot), reset)
	send(change(b.key, 3))
	b.applied.wait(t, 3, 10*time.Second)
	read("entry-1", "PM123", protocol.DecisionDeny, protocol.ReasonAlreadyInside)
	if l.Stats().Duplicates == 0 {
		t.Error("the redelivered reset was not counted as a duplicate")
	}

	// Revoked: no longer opens, online or off.
	read("exit-1", "PM123", protocol.DecisionOpen, protocol.ReasonInside)
	send(protocol.PermitChange(lot, 4, protocol.OpDelete, protocol.Permit{ID: "p1"}))
	b.applied.wait(t, 4, 10*time.Second)
	read("entry-1", "PM123", protocol.DecisionDeny, protocol.ReasonNoReservation)
	px.cut()
	waitFor(t, 10*time.Second, "link down", func() bool { return !l.Connected() })
	read("entry-1", "PM123", protocol.DecisionDeny, protocol.ReasonNoReservation)
	read("entry-1", "P3", protocol.DecisionOpen, protocol.ReasonValid) // the reservations are unaffected
}

// TestUnknownKindKeepsSyncing: an agent ignores a kind it does not know and
// keeps syncing — live and through catch-up — rather than stall at its seq.
func TestUnknownKindKeepsSyncing(t *testing.T) {
	b := setup(t, "", nil)
	cloudHTTP := newFakeCloud(t, "edge-secret")
	b.cfg.CloudURL, b.cfg.Token = cloudHTTP.srv.URL, "edge-secret"
	l := b.start(t)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	future := func(seq int64) protocol.ReservationChange {
		c := protocol.ReservationChange{V: protocol.Version, LotID: lot, Seq: seq, Kind: "tariff", Op: "set",
			Data: map[string]string{"amount": "250", "currency": "EUR"}}
		c.Sign(b.key)
		return c
	}

	// Live: the unknown change and the one after it.
	for _, c := range []protocol.ReservationChange{future(1), change(b.key, 2)} {
		cloudHTTP.add(c)
		publish(t, cloud, protocol.ReservationsTopic(lot), c)
	}
	b.applied.wait(t, 2, 10*time.Second)
	// Caught up: 3 (unknown) and 4 never reach the broker; 5 does, and its
	// gap is filled over HTTP.
	cloudHTTP.add(future(3), change(b.key, 4), change(b.key, 5))
	publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, 5))
	b.applied.wait(t, 5, 20*time.Second)

	for _, p := range []string{"P2", "P4", "P5"} {
		if v, _ := b.store.Lookup(p); !v.Exact.Known() {
			t.Fatalf("%s missing: the stream stalled at an unknown kind", p)
		}
	}
	if st := l.Stats(); st.Skipped != 2 || st.Invalid != 0 || st.BadSignatures != 0 {
		t.Fatalf("stats %+v, want 2 skipped and nothing refused", st)
	}
}

// TestForgedPermitRefused: a permit change signed by a key the edge does
// not trust, or changed after the cloud signed it, is refused — nothing
// stored, its seq not applied — and an unknown kind is no way around it.
func TestForgedPermitRefused(t *testing.T) {
	b := setup(t, "", nil)
	l := b.start(t)
	a, _ := newAgent(t, b, l)
	attacker := client(t, b.broker.URL(), "attacker", true, nil)

	pm := protocol.Permit{ID: "p1", Plate: "EVIL1", ValidFrom: t0.Add(-time.Hour), ValidUntil: t0.Add(time.Hour)}
	forged := protocol.PermitChange(lot, 1, protocol.OpUpsert, pm)
	forged.Sign(cloudKey(99))
	tampered := protocol.PermitChange(lot, 1, protocol.OpUpsert, protocol.Permit{ID: "p1", Plate: "GOOD1",
		ValidFrom: pm.ValidFrom, ValidUntil: pm.ValidUntil})
	tampered.Sign(b.key)
	tampered.Data[protocol.DataPlate] = "EVIL1"
	unknown := protocol.ReservationChange{V: protocol.Version, LotID: lot, Seq: 1, Kind: "tariff", Op: "set"}
	unknown.Sign(cloudKey(99))
	for _, c := range []protocol.ReservationChange{forged, tampered, unknown} {
		publish(t, attacker, protocol.ReservationsTopic(lot), c)
	}
	waitFor(t, 10*time.Second, "three refusals", func() bool { return l.Stats().BadSignatures == 3 })
	if v, _ := b.store.Lookup("EVIL1"); v.Exact.Known() || l.AppliedSeq() != 0 {
		t.Fatalf("forged permit stored: %+v, applied %d", v, l.AppliedSeq())
	}
	reader(t, a)("entry-1", "EVIL1", protocol.DecisionDeny, protocol.ReasonNoReservation)

	genuine := protocol.PermitChange(lot, 1, protocol.OpUpsert, pm)
	genuine.Sign(b.key)
	publish(t, attacker, protocol.ReservationsTopic(lot), genuine)
	b.applied.wait(t, 1, 10*time.Second)
	reader(t, a)("entry-1", "EVIL1", protocol.DecisionOpen, protocol.ReasonPermit)
}

// TestRemoteOpenOverTheStream: a remote open sent down the lot's stream
// reaches the agent once it is applied, and the agent opens the gate; the
// same command delivered again is not run again; one heard of after its
// deadline is not carried out.
func TestRemoteOpenOverTheStream(t *testing.T) {
	b := setup(t, "", nil)
	var agent atomic.Pointer[edge.Agent]
	type ran struct {
		seq    int64
		opened bool
	}
	results := make(chan ran, 10)
	next := func() ran {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no command reached the agent")
			return ran{}
		}
	}
	b.cfg.OnCommand = func(c protocol.ReservationChange) {
		go func() {
			opened, err := agent.Load().Command(context.Background(), c)
			if err != nil {
				t.Errorf("command %d: %v", c.Seq, err)
			}
			results <- ran{c.Seq, opened}
		}()
	}
	l := b.start(t)
	a, _ := newAgent(t, b, l)
	agent.Store(a)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	send := func(c protocol.ReservationChange) protocol.ReservationChange {
		c.Sign(b.key)
		publish(t, cloud, protocol.ReservationsTopic(lot), c)
		return c
	}
	now := time.Now()
	open := send(protocol.GateOpenChange(lot, 1, protocol.GateOpen{ID: "o1", GateID: "entry-1", Reason: "intercom",
		IssuedAt: now, NotAfter: now.Add(30 * time.Second)}))
	b.applied.wait(t, 1, 10*time.Second)
	if r := next(); r.seq != 1 || !r.opened {
		t.Fatalf("remote open: %+v", r)
	}
	publish(t, cloud, protocol.ReservationsTopic(lot), open) // delivered again
	send(change(b.key, 2))
	b.applied.wait(t, 2, 10*time.Second)
	send(protocol.GateOpenChange(lot, 3, protocol.GateOpen{ID: "o2", GateID: "entry-1", Reason: "intercom",
		IssuedAt: now.Add(-2 * time.Minute), NotAfter: now.Add(-90 * time.Second)}))
	b.applied.wait(t, 3, 10*time.Second)
	if r := next(); r.seq != 3 || r.opened {
		t.Fatalf("after the redelivery, the late command: %+v; want seq 3 not opened (and seq 1 not run again)", r)
	}
	select {
	case r := <-results:
		t.Fatalf("a command ran again: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
}
