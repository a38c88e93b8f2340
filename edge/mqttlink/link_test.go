package mqttlink_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/edge/mqttlink"
	"github.com/parkgate/parkgate/protocol"
)

func TestSignedChangeReachesStore(t *testing.T) {
	b := setup(t, "", nil)
	b.start(t)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)

	publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, 1))
	b.applied.wait(t, 1, 10*time.Second)
	v, err := b.store.Lookup("P1")
	if err != nil || len(v.Exact.Reservations) != 1 || v.Exact.Reservations[0].ID != "r1" {
		t.Fatalf("Lookup P1 = %+v, %v", v, err)
	}
}

// TestChangesWhileDisconnectedConverge: the agent is away while 100 changes
// are published, in shuffled order; on reconnect the broker delivers what it
// queued for the persistent session and the agent applies all of it in
// sequence.
func TestChangesWhileDisconnectedConverge(t *testing.T) {
	b := setup(t, "", nil)
	first := b.start(t) // creates the session and its subscription
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	order := rand.Perm(100)
	for _, i := range order {
		publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, int64(i+1)))
	}

	l := b.start(t)
	b.applied.wait(t, 100, 20*time.Second)
	for i := int64(1); i <= 100; i++ {
		if v, _ := b.store.Lookup(fmt.Sprintf("P%d", i)); len(v.Exact.Reservations) != 1 {
			t.Fatalf("P%d missing after convergence", i)
		}
	}
	if st := l.Stats(); st.Applied != 100 || l.AppliedSeq() != 100 {
		t.Fatalf("stats %+v, applied seq %d", st, l.AppliedSeq())
	}
}

// TestBadSignatureRefused: whoever can publish to the broker still cannot
// add a reservation.
func TestBadSignatureRefused(t *testing.T) {
	b := setup(t, "", nil)
	reg := prometheus.NewRegistry()
	b.cfg.Registerer = reg
	l := b.start(t)
	cloud := client(t, b.broker.URL(), "attacker", true, nil)

	forged := change(cloudKey(99), 1) // signed, by the wrong key
	tampered := change(b.key, 1)      // signed by the cloud, then changed
	tampered.Reservation.Plate = "EVIL1"
	unsigned := change(b.key, 1)
	unsigned.Sig = ""
	for _, c := range []protocol.ReservationChange{forged, tampered, unsigned} {
		publish(t, cloud, protocol.ReservationsTopic(lot), c)
	}
	waitFor(t, 10*time.Second, "three refusals", func() bool { return l.Stats().BadSignatures == 3 })
	if v, _ := b.store.Lookup("EVIL1"); v.Exact.Known() || l.AppliedSeq() != 0 {
		t.Fatalf("forged change stored: %+v, applied %d", v, l.AppliedSeq())
	}

	// The genuine change with the same seq still applies.
	publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, 1))
	b.applied.wait(t, 1, 10*time.Second)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "parkedge_sync_bad_signatures_total" {
			found = f.GetMetric()[0].GetCounter().GetValue() == 3
		}
	}
	if !found {
		t.Fatal("parkedge_sync_bad_signatures_total is not 3")
	}
}

// TestCatchUp: a fresh store catches up from the cloud's log at start
// (across pages); a gap in live messages triggers catch-up; live apply goes
// on afterwards.
func TestCatchUp(t *testing.T) {
	b := setup(t, "", nil)
	cloudHTTP := newFakeCloud(t, "edge-secret")
	for i := int64(1); i <= 5; i++ {
		cloudHTTP.add(change(b.key, i))
	}
	b.cfg.CloudURL, b.cfg.Token = cloudHTTP.srv.URL, "edge-secret"
	l := b.start(t)
	b.applied.wait(t, 5, 10*time.Second) // two pages of three

	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	c6 := change(b.key, 6)
	cloudHTTP.add(c6)
	publish(t, cloud, protocol.ReservationsTopic(lot), c6)
	b.applied.wait(t, 6, 10*time.Second)

	// 7 and 8 never reach the broker (a relay outage); 9 does.
	for i := int64(7); i <= 9; i++ {
		cloudHTTP.add(change(b.key, i))
	}
	publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, 9))
	b.applied.wait(t, 9, 10*time.Second)
	for _, p := range []string{"P7", "P8", "P9"} {
		if v, _ := b.store.Lookup(p); !v.Exact.Known() {
			t.Fatalf("%s missing after catch-up", p)
		}
	}

	c10 := change(b.key, 10)
	cloudHTTP.add(c10)
	publish(t, cloud, protocol.ReservationsTopic(lot), c10)
	b.applied.wait(t, 10, 10*time.Second)
	if st := l.Stats(); st.CatchUps == 0 || st.BadSignatures != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCatchUpWrongTokenKeepsLiveApply(t *testing.T) {
	b := setup(t, "", nil)
	cloudHTTP := newFakeCloud(t, "right")
	cloudHTTP.add(change(b.key, 1))
	b.cfg.CloudURL, b.cfg.Token = cloudHTTP.srv.URL, "wrong"
	l := b.start(t)
	waitFor(t, 10*time.Second, "a refused catch-up", func() bool { return l.Stats().CatchUpErrors > 0 })
	if l.AppliedSeq() != 0 {
		t.Fatal("applied without a valid token")
	}
	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	// Connected turns true before the link's first SUBSCRIBE completes, and
	// a change published before it is not the session's: send it until it
	// lands (a duplicate is ignored).
	waitFor(t, 10*time.Second, "change 1 applied live", func() bool {
		if l.AppliedSeq() >= 1 {
			return true
		}
		publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, 1))
		return l.AppliedSeq() >= 1
	})
}

// newAgent builds an agent with fake barriers on the bundle's store.
func newAgent(t *testing.T, b *bundle, link edge.Link) (*edge.Agent, *hwtest.Pin) {
	t.Helper()
	entryPin, exitPin := hwtest.NewPin("entry-1.barrier"), hwtest.NewPin("exit-1.barrier")
	entry, _ := hw.NewBarrier(entryPin, 10*time.Millisecond)
	exit, _ := hw.NewBarrier(exitPin, 10*time.Millisecond)
	a, err := edge.NewAgent(edge.Config{LotID: lot, Store: b.store, Link: link, Policy: edge.DefaultPolicy(),
		Gates: []edge.GateConfig{
			{Gate: edge.Gate{ID: "entry-1", Direction: protocol.DirectionEntry}, Barrier: entry},
			{Gate: edge.Gate{ID: "exit-1", Direction: protocol.DirectionExit}, Barrier: exit},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return a, entryPin
}

// TestOfflineAgentDecidesAndDelivers: the agent's network goes away; it
// keeps deciding from its store (marking the events offline), the broker
// marks both gates offline through their wills, and once the network is
// back every event reaches the cloud's ingest, in order, none twice in
// effect.
func TestOfflineAgentDecidesAndDelivers(t *testing.T) {
	b := setup(t, "", nil)
	px := newProxy(t, b.broker.Addr())
	b.cfg.Brokers = []string{px.url()}
	ingest := newReceiver(t, b.broker.URL())
	l := b.start(t)
	a, _ := newAgent(t, b, l)

	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	for i := int64(1); i <= 20; i++ {
		publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, i))
	}
	b.applied.wait(t, 20, 10*time.Second)
	waitFor(t, 10*time.Second, "both gates online", func() bool {
		return ingest.status("entry-1") == protocol.StateOnline && ingest.status("exit-1") == protocol.StateOnline
	})

	px.cut()
	waitFor(t, 10*time.Second, "link down", func() bool { return !l.Connected() })
	waitFor(t, 15*time.Second, "wills mark both gates offline", func() bool {
		return ingest.status("entry-1") == protocol.StateOffline && ingest.status("exit-1") == protocol.StateOffline
	})

	var want []string
	ctx := context.Background()
	read := func(gate, plate string, wantDecision, wantReason string) {
		res, err := a.HandleRead(ctx, edge.PlateRead{GateID: gate, Plate: plate, Confidence: 0.95})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision.Decision != wantDecision || res.Reason != wantReason {
			t.Fatalf("%s %s: %s/%s, want %s/%s", gate, plate, res.Decision.Decision, res.Reason, wantDecision, wantReason)
		}
		want = append(want, res.EventID)
	}
	for i := 1; i <= 20; i++ {
		read("entry-1", fmt.Sprintf("P%d", i), protocol.DecisionOpen, protocol.ReasonValid)
	}
	read("entry-1", "P1", protocol.DecisionDeny, protocol.ReasonAlreadyInside)
	read("entry-1", "NOPE1", protocol.DecisionDeny, protocol.ReasonNoReservation)
	for i := 1; i <= 20; i++ {
		read("exit-1", fmt.Sprintf("P%d", i), protocol.DecisionOpen, protocol.ReasonInside)
	}
	read("exit-1", "P1", protocol.DecisionOpen, protocol.ReasonValid) // no longer inside, but its window covers now
	if b.store.Depth() != len(want) {
		t.Fatalf("outbox depth %d, want %d", b.store.Depth(), len(want))
	}

	px.restore(t)
	waitFor(t, 20*time.Second, "every event delivered", func() bool { return len(ingest.unique()) == len(want) && b.store.Depth() == 0 })
	got := ingest.unique()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d arrived as %s, want %s (order broken)", i, got[i], want[i])
		}
	}
	ingest.mu.Lock()
	for _, e := range ingest.events {
		if !e.Offline || e.Validate() != nil {
			t.Fatalf("event not marked offline or invalid: %+v", e)
		}
	}
	ingest.mu.Unlock()
	waitFor(t, 10*time.Second, "both gates online again", func() bool {
		t.Logf("entry-1 %s, exit-1 %s", ingest.status("entry-1"), ingest.status("exit-1"))
		return ingest.status("entry-1") == protocol.StateOnline && ingest.status("exit-1") == protocol.StateOnline
	})
}

// TestBrokerRestart restarts the broker in the middle of a stream of
// changes and gate events; nothing is lost either way.
func TestBrokerRestart(t *testing.T) {
	b := setup(t, "", nil)
	ingest := newReceiver(t, b.broker.URL())
	l := b.start(t)
	a, _ := newAgent(t, b, l)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)

	events := startReads(a, "entry-1")
	for i := int64(1); i <= 50; i++ {
		publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, i))
	}
	events.waitMore(t, 20)
	if err := b.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	cloud = client(t, b.broker.URL(), "cloud-2", true, nil)
	for i := int64(51); i <= 100; i++ {
		publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, i))
	}
	b.applied.wait(t, 100, 30*time.Second)
	waitFor(t, 10*time.Second, "link reconnected", l.Connected)
	events.waitMore(t, 20)
	want := events.stop(t)

	waitFor(t, 30*time.Second, "every event delivered", func() bool { return b.store.Depth() == 0 && len(ingest.unique()) == len(want) })
	got := map[string]bool{}
	for _, id := range ingest.unique() {
		got[id] = true
	}
	for _, id := range want {
		if !got[id] {
			t.Fatalf("event %s lost across the broker restart", id)
		}
	}
	if l.Stats().Connections < 2 {
		t.Fatalf("connections %d: the restart was not seen", l.Stats().Connections)
	}
}

// TestFlakyNetwork cuts the agent's network five times while gate events
// flow; every event arrives, and in the order the gate decided them (first
// arrivals: duplicates are allowed, the ingest drops them by event id).
func TestFlakyNetwork(t *testing.T) {
	b := setup(t, "", nil)
	px := newProxy(t, b.broker.Addr())
	b.cfg.Brokers = []string{px.url()}
	b.cfg.Window = 16
	ingest := newReceiver(t, b.broker.URL())
	l := b.start(t)
	a, _ := newAgent(t, b, l)

	events := startReads(a, "entry-1")
	for range 5 {
		events.waitMore(t, 30)
		px.cut()
		events.waitMore(t, 10)
		px.restore(t)
		waitFor(t, 10*time.Second, "link reconnected", l.Connected)
	}
	events.waitMore(t, 30)
	want := events.stop(t)

	waitFor(t, 30*time.Second, "every event delivered", func() bool { return b.store.Depth() == 0 && len(ingest.unique()) == len(want) })
	got := ingest.unique()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d arrived as %s, want %s (order broken)", i, got[i], want[i])
		}
	}
	t.Logf("%d events, %d deliveries, %d connections", len(want), len(ingest.events), l.Stats().Connections)
}

// reads drives plate reads at one gate from a goroutine until stopped.
type reads struct {
	mu   sync.Mutex
	ids  []string
	more chan struct{}
	halt chan struct{}
	done chan error
}

func startReads(a *edge.Agent, gate string) *reads {
	r := &reads{more: make(chan struct{}, 1), halt: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-r.halt:
				r.done <- nil
				return
			default:
			}
			res, err := a.HandleRead(context.Background(), edge.PlateRead{GateID: gate, Plate: fmt.Sprintf("Q%d", i), Confidence: 0.9})
			if err != nil {
				r.done <- err
				return
			}
			r.mu.Lock()
			r.ids = append(r.ids, res.EventID)
			r.mu.Unlock()
			select {
			case r.more <- struct{}{}:
			default:
			}
			time.Sleep(time.Millisecond) // a busy gate, not a benchmark
		}
	}()
	return r
}

// waitMore waits until n more events than now have been recorded.
func (r *reads) waitMore(t *testing.T, n int) {
	t.Helper()
	r.mu.Lock()
	target := len(r.ids) + n
	r.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		have := len(r.ids)
		r.mu.Unlock()
		if have >= target {
			return
		}
		select {
		case <-r.more:
		case err := <-r.done:
			t.Fatalf("reads stopped: %v", err)
		case <-deadline:
			t.Fatalf("only %d of %d reads", have, target)
		}
	}
}

func (r *reads) stop(t *testing.T) []string {
	t.Helper()
	close(r.halt)
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// TestFailover: the first broker in the list is down; the agent connects
// to the next and applies changes from it.
func TestFailover(t *testing.T) {
	b := setup(t, "", nil)
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b.cfg.Brokers = []string{fmt.Sprintf("tcp://127.0.0.1:%d", port), b.broker.URL()}
	b.start(t)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, 1))
	b.applied.wait(t, 1, 10*time.Second)
}

func TestNewValidates(t *testing.T) {
	key := cloudKey(1).Public().(ed25519.PublicKey)
	for name, cfg := range map[string]mqttlink.Config{
		"NoBroker": {LotID: lot, Gates: []string{"g"}, Keys: []ed25519.PublicKey{key}},
		"NoLot":    {Brokers: []string{"tcp://x:1"}, Gates: []string{"g"}, Keys: []ed25519.PublicKey{key}},
		"NoGates":  {Brokers: []string{"tcp://x:1"}, LotID: lot, Keys: []ed25519.PublicKey{key}},
		"NoKeys":   {Brokers: []string{"tcp://x:1"}, LotID: lot, Gates: []string{"g"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := mqttlink.New(cfg, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
