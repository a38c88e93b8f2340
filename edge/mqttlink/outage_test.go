package mqttlink_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

// TestBrokerOutageCatchesUpOverHTTP (finding 12): with the broker down and
// the cloud reachable, a change the cloud logs during the outage reaches
// the store through periodic HTTP catch-up, before the broker is back.
func TestBrokerOutageCatchesUpOverHTTP(t *testing.T) {
	b := setup(t, "", nil) // a private broker: this test stops it
	cloudHTTP := newFakeCloud(t, "edge-secret")
	cloudHTTP.add(change(b.key, 1))
	b.cfg.CloudURL, b.cfg.Token = cloudHTTP.srv.URL, "edge-secret"
	b.cfg.CatchUpInterval = 100 * time.Millisecond
	l := b.start(t)
	b.applied.wait(t, 1, 10*time.Second)

	if err := b.broker.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "link disconnected", func() bool { return !l.Connected() })
	before := l.Stats().CatchUps
	waitFor(t, 5*time.Second, "a catch-up during the outage", func() bool { return l.Stats().CatchUps > before })

	// Confirmed while the broker is down: only HTTP can bring it.
	cloudHTTP.add(change(b.key, 2))
	b.applied.wait(t, 2, 5*time.Second) // a few intervals, far less than the broker's absence
	if v, _ := b.store.Lookup("P2"); !v.Exact.Known() {
		t.Fatal("P2 missing after catch-up during the outage")
	}
	if l.Connected() {
		t.Fatal("the broker came back by itself: the test proves nothing")
	}

	// Once the broker is back, polling stops: requests settle.
	if err := b.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "link reconnected", l.Connected)
}

// TestKeyRegistration (finding 14): the link registers the store's key,
// retrying while the cloud refuses, and holds gate events in the outbox
// until the key is registered, since the cloud drops events it cannot
// verify. What it publishes then verifies with that key.
func TestKeyRegistration(t *testing.T) {
	b := setup(t, "", nil)
	cloudHTTP := newFakeCloud(t, "edge-secret")
	cloudHTTP.setRefuseKeys(true)
	b.cfg.CloudURL, b.cfg.Token = cloudHTTP.srv.URL, "edge-secret"
	b.cfg.PublicKey = b.store.PublicKey()
	recv := newReceiver(t, b.broker.URL())
	l := b.start(t)

	ev := protocol.GateEvent{V: protocol.Version, EventID: "ev-1", Kind: protocol.KindDecision, LotID: lot,
		GateID: "entry-1", Direction: protocol.DirectionEntry, Decision: protocol.DecisionOpen,
		Reason: protocol.ReasonValid, OccurredAt: t0}
	if err := <-b.store.Record(edge.Record{Event: ev}); err != nil {
		t.Fatal(err)
	}
	// An attempt is four requests (the HTTP client retries a 503 three
	// times) and attempts are a second apart, so a fifth request comes a
	// second after the commit: the drainer (woken by the commit and every
	// second) has had its chance to publish meanwhile.
	waitFor(t, 10*time.Second, "a second registration attempt", func() bool { n, _ := cloudHTTP.keyState(); return n >= 5 })
	if got := recv.unique(); len(got) != 0 || b.store.Depth() != 1 || l.Stats().KeyRegistered {
		t.Fatalf("published %v (depth %d) before the key was registered", got, b.store.Depth())
	}

	cloudHTTP.setRefuseKeys(false)
	waitFor(t, 10*time.Second, "key registered", func() bool { return l.Stats().KeyRegistered })
	if _, keys := cloudHTTP.keyState(); len(keys) != 1 || keys[0] != protocol.EncodePublicKey(b.store.PublicKey()) {
		t.Fatalf("registered %v", keys)
	}
	waitFor(t, 10*time.Second, "event published", func() bool { return len(recv.unique()) == 1 })
	recv.mu.Lock()
	got := recv.events[0]
	recv.mu.Unlock()
	if err := got.Verify([]ed25519.PublicKey{b.store.PublicKey()}); err != nil {
		t.Fatalf("published event does not verify: %v", err)
	}
	if !b.store.KeyRegistered(b.store.PublicKey()) {
		t.Fatal("the store does not remember the registration")
	}
}
