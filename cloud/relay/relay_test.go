package relay

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/protocol"
)

func TestRelayPublishesInOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lotA, lotB := f.lot(), f.lot()
	sub, _ := newSubscriber(t, url, f.pub, true, lotA, lotB)

	// Some changes wait before the relay starts, the rest arrive while it
	// runs and are picked up at its poll.
	f.addChanges(lotA, 30)
	startRelay(t, f, url, Options{BatchSize: 7})
	for range 10 {
		f.addChanges(lotA, 2)
		f.addChanges(lotB, 3)
	}

	eventually(t, 20*time.Second, "all changes delivered", func() bool {
		return sub.distinct(lotA) == 50 && sub.distinct(lotB) == 30
	})
	if errs := sub.errors(); len(errs) > 0 {
		t.Fatalf("bad messages: %v", errs)
	}
	if err := checkOrder(sub.got(lotA), 50); err != nil {
		t.Errorf("lot A: %v", err)
	}
	if err := checkOrder(sub.got(lotB), 30); err != nil {
		t.Errorf("lot B: %v", err)
	}
	eventually(t, 5*time.Second, "all rows marked published", func() bool {
		return f.unpublished(lotA) == 0 && f.unpublished(lotB) == 0
	})
}

// TestRelayWakeClaimsTheLot: with no poll to fall back on, a wake naming a
// lot gets its changes published (the claim of that lot alone); changes of
// a lot nobody woke for wait; a lot woken again while it is being drained
// is claimed once the drain is done; a wake naming no lot claims every
// lot's.
func TestRelayWakeClaimsTheLot(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lotA, lotB := f.lot(), f.lot()
	sub, _ := newSubscriber(t, url, f.pub, true, lotA, lotB)
	r, _ := runRelay(t, f, url, Options{PollInterval: time.Hour, BatchSize: 5})
	// The first round looks at every lot: nothing yet.
	time.Sleep(200 * time.Millisecond)

	f.addChanges(lotA, 3)
	f.addChanges(lotB, 2)
	r.Wake(lotA)
	eventually(t, 10*time.Second, "lot A's changes published", func() bool { return sub.distinct(lotA) == 3 })
	time.Sleep(300 * time.Millisecond)
	if n := sub.distinct(lotB); n != 0 {
		t.Fatalf("%d changes of lot B published with no wake for it and no poll", n)
	}

	// 58 changes are more than a drain's turn (10 batches of 5): the rest
	// is claimed again, not left for the poll; nor are a change and a wake
	// made while the lot is being drained.
	f.addChanges(lotA, 58)
	r.Wake(lotA)
	f.addChanges(lotA, 1)
	r.Wake(lotA)
	eventually(t, 10*time.Second, "lot A's later changes published", func() bool { return sub.distinct(lotA) == 62 })
	if err := checkOrder(sub.got(lotA), 62); err != nil {
		t.Error(err)
	}

	r.Wake("")
	eventually(t, 10*time.Second, "lot B's changes published after a wake naming no lot", func() bool { return sub.distinct(lotB) == 2 })
	eventually(t, 5*time.Second, "all marked", func() bool { return f.unpublished(lotA) == 0 && f.unpublished(lotB) == 0 })
}

// TestRelayConcurrentReplicas runs two relays on one schema while changes
// are written concurrently to several lots: each lot's changes must reach
// the subscriber in order and complete, whichever replica sent them.
func TestRelayConcurrentReplicas(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lots := []string{f.lot(), f.lot(), f.lot(), f.lot(), f.lot()}
	sub, _ := newSubscriber(t, url, f.pub, true, lots...)

	startRelay(t, f, url, Options{BatchSize: 5, Parallel: 2})
	startRelay(t, f, url, Options{BatchSize: 5, Parallel: 2})

	const perLot = 40
	var wg sync.WaitGroup
	for _, lot := range lots {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perLot / 2 {
					f.addChanges(lot, 1)
				}
			}()
		}
	}
	wg.Wait()

	eventually(t, 30*time.Second, "all changes delivered", func() bool {
		for _, lot := range lots {
			if sub.distinct(lot) != perLot {
				return false
			}
		}
		return true
	})
	if errs := sub.errors(); len(errs) > 0 {
		t.Fatalf("bad messages: %v", errs)
	}
	for _, lot := range lots {
		if err := checkOrder(sub.got(lot), perLot); err != nil {
			t.Errorf("lot %s: %v", lot, err)
		}
	}
	eventually(t, 5*time.Second, "all rows marked published", func() bool {
		return f.queryInt(`SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})
}

// TestRelayTakeover stops a relay in the middle of a backlog; a second one
// must finish it, in order, with nothing lost.
func TestRelayTakeover(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	sub, _ := newSubscriber(t, url, f.pub, true, lot)
	// Enough that the first relay, in small batches, is stopped well
	// before the end even by a broker that answers at once.
	const n = 2000
	f.addChanges(lot, n)

	stopFirst := startRelay(t, f, url, Options{BatchSize: 10})
	eventually(t, 30*time.Second, "first relay under way", func() bool { return sub.distinct(lot) >= 50 })
	stopFirst()
	if f.unpublished(lot) == 0 {
		t.Fatal("first relay finished the whole backlog; the test proves nothing")
	}
	if leases := f.queryInt(`SELECT count(*) FROM relay_leases`); leases != 0 {
		t.Errorf("stopped relay left %d leases", leases)
	}

	startRelay(t, f, url, Options{BatchSize: 100})
	eventually(t, 90*time.Second, "second relay finished", func() bool { return f.unpublished(lot) == 0 })
	eventually(t, 5*time.Second, "all changes delivered", func() bool { return sub.distinct(lot) == n })
	if err := checkOrder(sub.got(lot), n); err != nil {
		t.Error(err)
	}
}

// TestRelayLeaseExpiry: a replica that died without releasing its lease
// holds the lot until the lease runs out; then another takes over.
func TestRelayLeaseExpiry(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	sub, _ := newSubscriber(t, url, f.pub, true, lot)
	f.addChanges(lot, 5)
	f.exec(`INSERT INTO relay_leases (lot_id, owner, expires_at) VALUES ($1, 'dead-replica', now() + interval '1 second')`, lot)

	start := time.Now()
	startRelay(t, f, url, Options{Owner: "live-replica"})
	eventually(t, 10*time.Second, "changes delivered", func() bool { return sub.distinct(lot) == 5 })
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("published after %s, while the dead replica's lease still held", waited)
	}
	if err := checkOrder(sub.got(lot), 5); err != nil {
		t.Error(err)
	}
	eventually(t, 5*time.Second, "rows marked", func() bool { return f.unpublished(lot) == 0 })
}

// TestRelayOwnLeaseLeftBehind (issue 13's soak): a drain whose lease
// release failed with the database leaves this replica's own lease behind;
// once the database is back the replica takes its lot again at once
// instead of holding the lot's changes back from its edge until the lease
// runs out.
func TestRelayOwnLeaseLeftBehind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	sub, _ := newSubscriber(t, url, f.pub, true, lot)
	f.addChanges(lot, 5)
	f.exec(`INSERT INTO relay_leases (lot_id, owner, expires_at) VALUES ($1, 'this-replica', now() + interval '10 minutes')`, lot)

	startRelay(t, f, url, Options{Owner: "this-replica"})
	eventually(t, 60*time.Second, "changes delivered", func() bool { return sub.distinct(lot) == 5 })
	if err := checkOrder(sub.got(lot), 5); err != nil {
		t.Error(err)
	}
	eventually(t, 10*time.Second, "rows marked", func() bool { return f.unpublished(lot) == 0 })
}

// fakePublisher completes publishes at once. While trap > 0 it plays paho
// across a reconnect: the token completes without error, but the connection
// has changed since the publish.
type fakePublisher struct {
	mu   sync.Mutex
	gen  uint64
	trap int
	sent []int64
}

func (p *fakePublisher) connect(context.Context) error { return nil }
func (p *fakePublisher) close()                        {}
func (p *fakePublisher) epoch() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

func (p *fakePublisher) publish(_ string, payload []byte) (mqtt.Token, uint64) {
	var c protocol.ReservationChange
	_ = json.Unmarshal(payload, &c)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, c.Seq)
	gen := p.gen
	if p.trap > 0 {
		p.trap--
		p.gen++
	}
	return doneToken{}, gen
}

func TestRelayReconnectGuard(t *testing.T) {
	t.Parallel()
	f := setup(t)
	lot := f.lot()
	f.addChanges(lot, 3)
	r, err := New(f.db, MQTTConfig{Brokers: []string{"tcp://127.0.0.1:1"}}, f.key, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakePublisher{trap: 1}
	r.pub = fake
	ctx := context.Background()
	if _, err := r.outbox.ClaimOutboxLots(ctx, r.opts.Owner, time.Minute, 10, nil, 0); err != nil {
		t.Fatal(err)
	}

	if _, err := r.drain(ctx, lot, nil); err == nil {
		t.Fatal("drain trusted a completion from another connection")
	}
	if got := f.unpublished(lot); got != 3 {
		t.Fatalf("%d rows unpublished after the untrusted completion, want 3", got)
	}
	if _, err := r.outbox.ClaimOutboxLots(ctx, r.opts.Owner, time.Minute, 10, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.drain(ctx, lot, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.unpublished(lot); got != 0 {
		t.Fatalf("%d rows unpublished after a clean publish", got)
	}
	if err := checkOrder(fake.sent, 3); err != nil || len(fake.sent) != 6 {
		t.Fatalf("sent %v (%v); want 1..3 twice", fake.sent, err)
	}
}

// TestRelayBrokerRestart restarts the broker while the relay publishes: the
// relay reconnects and nothing is lost. Order is not checked here: the
// broker's redelivery of a persistent session's queue is not ordered, which
// is why edges apply by seq.
func TestRelayBrokerRestart(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := broker.Start(t)
	lot := f.lot()
	sub, _ := newSubscriber(t, b.URL(), f.pub, false, lot)
	startRelay(t, f, b.URL(), Options{BatchSize: 10, PublishTimeout: 2 * time.Second})

	f.addChanges(lot, 100)
	eventually(t, 10*time.Second, "first changes delivered", func() bool { return sub.distinct(lot) >= 20 })
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	f.addChanges(lot, 100)
	eventually(t, 30*time.Second, "all changes delivered", func() bool { return sub.distinct(lot) == 200 })
	eventually(t, 10*time.Second, "all rows marked", func() bool { return f.unpublished(lot) == 0 })
	if errs := sub.errors(); len(errs) > 0 {
		t.Fatalf("bad messages: %v", errs)
	}
}
