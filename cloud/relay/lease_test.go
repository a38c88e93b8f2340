package relay

import (
	"context"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
)

// heldPublisher completes publishes at once, but only after release is
// closed: the test cuts the database while a batch is with the broker.
type heldPublisher struct {
	sent    chan struct{}
	release chan struct{}
}

func (p *heldPublisher) connect(context.Context) error { return nil }
func (p *heldPublisher) close()                        {}
func (p *heldPublisher) epoch() uint64                 { return 0 }
func (p *heldPublisher) publish(string, []byte) (mqtt.Token, uint64) {
	select {
	case p.sent <- struct{}{}:
	default:
	}
	<-p.release
	return doneToken{}, 0
}

// TestDrainCutFromTheDatabase (issue 13's soak, seed 1796492727194828187):
// the database goes away while a drain's batch is with the broker, so
// neither its mark nor its lease's release reaches the database and the
// lease stays behind. When the database is back, the replica claims the
// lot again at once and publishes the batch again, rather than leaving
// the lot's changes unpublished until its own lease runs out (a minute
// here, 15 s in production: longer than a booking's window in the soak).
func TestDrainCutFromTheDatabase(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 20)
	f := setup(t)
	f.db, f.pool = s.DB, s.DB.Pool
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.Listen("127.0.0.1:0", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	db, err := postgres.Open(context.Background(), u.String(), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	lot := f.lot()
	f.addChanges(lot, 3)
	r, err := New(db, MQTTConfig{Brokers: []string{"tcp://127.0.0.1:1"}}, f.key,
		Options{Owner: "replica-1", LeaseTTL: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	pub := &heldPublisher{sent: make(chan struct{}, 1), release: make(chan struct{})}
	r.pub = pub
	ctx := context.Background()
	if lots, err := r.outbox.ClaimOutboxLots(ctx, "replica-1", time.Minute, 10, nil, 0); err != nil || len(lots) != 1 {
		t.Fatalf("claim: %v, %v", lots, err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.drain(ctx, lot, nil); done <- err }()
	select {
	case <-pub.sent:
	case <-time.After(30 * time.Second):
		t.Fatal("the drain never published")
	}
	proxy.Cut()
	close(pub.release)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the drain marked its batch through a cut database")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the drain did not end")
	}
	if n := f.queryInt(`SELECT count(*) FROM relay_leases WHERE owner = 'replica-1' AND expires_at > now()`); n != 1 {
		t.Fatalf("%d live leases of replica-1 after the cut drain; the test needs the one left behind", n)
	}
	if f.unpublished(lot) != 3 {
		t.Fatalf("%d unpublished; want the 3 whose mark was lost", f.unpublished(lot))
	}

	proxy.Restore()
	var lots []cloud.ClaimedLot
	deadline := time.Now().Add(30 * time.Second)
	for {
		lots, err = r.outbox.ClaimOutboxLots(ctx, "replica-1", time.Minute, 10, nil, 0)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the pool reconnecting
	}
	if err != nil || len(lots) != 1 || lots[0].LotID != lot {
		t.Fatalf("claim after the database came back: %v, %v; want %s at once, not after the lease", lots, err, lot)
	}
	if _, err := r.drain(ctx, lot, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.unpublished(lot); n != 0 {
		t.Errorf("%d changes unpublished after the second drain", n)
	}
}
