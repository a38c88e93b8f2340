package pgbus

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// These tests reach inside the bus to stand in for a worker that claims an
// event and then dies, which no public method can do.

const waitTimeout = 30 * time.Second

func newTestBus(t *testing.T, opts Options) (*Bus, *pgtest.Schema) {
	t.Helper()
	s := pgtest.New(t, 8)
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	return New(s.DB.Pool, opts), s
}

func publish(t *testing.T, b *Bus, m bus.Message) {
	t.Helper()
	if m.Type == "" {
		m.Type = "checkout.session.completed"
	}
	if m.Payload == nil {
		m.Payload = []byte(`{}`)
	}
	if _, err := b.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// run runs b with h until the test ends.
func run(t *testing.T, b *Bus, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func mustClaim(t *testing.T, b *Bus) (claimed, bool) {
	t.Helper()
	cs, err := b.claim(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 {
		return claimed{}, false
	}
	return cs[0], true
}

func attempts(t *testing.T, s *pgtest.Schema, id string) int {
	t.Helper()
	var n int
	if err := s.DB.Pool.QueryRow(context.Background(), `SELECT attempts FROM payment_events WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExpiredLeaseIsRedelivered(t *testing.T) {
	t.Parallel()
	b, s := newTestBus(t, Options{Lease: 300 * time.Millisecond})
	publish(t, b, bus.Message{ID: "evt_1", Key: "res_1"})
	// A worker claims the event and dies without a word.
	if c, ok := mustClaim(t, b); !ok || c.msg.ID != "evt_1" {
		t.Fatalf("claim = %v, %v; want evt_1", c.msg.ID, ok)
	}
	if _, ok := mustClaim(t, b); ok {
		t.Fatal("a leased event was claimed again before its lease ran out")
	}
	got := make(chan time.Time, 10)
	claimedAt := time.Now()
	run(t, b, func(ctx context.Context, m bus.Message) error {
		got <- time.Now()
		return nil
	})
	select {
	case at := <-got:
		if at.Sub(claimedAt) < 200*time.Millisecond {
			t.Errorf("redelivered %v after the claim, before the 300ms lease could run out", at.Sub(claimedAt))
		}
	case <-time.After(waitTimeout):
		t.Fatal("event of a dead worker was never redelivered")
	}
	if n := attempts(t, s, "evt_1"); n != 2 {
		t.Errorf("attempts = %d, want 2 (the dead worker's and the redelivery)", n)
	}
}

func TestLeaseIsRenewedWhileHandlerRuns(t *testing.T) {
	t.Parallel()
	// Each renewal gets Lease/3 to land; under -race on a busy 2-core box a
	// 100 ms allowance was seen to run out twice in a row and lose the lease,
	// so the lease here is long enough that only a real failure to renew does.
	const lease = 1500 * time.Millisecond
	b, s := newTestBus(t, Options{Lease: lease, Workers: 2})
	publish(t, b, bus.Message{ID: "evt_slow", Key: "res_1"})
	calls := make(chan struct{}, 10)
	finished := make(chan struct{})
	h := func(ctx context.Context, m bus.Message) error {
		calls <- struct{}{}
		// Outlive the lease several times over; without renewal the other
		// consumer would claim the event meanwhile.
		select {
		case <-time.After(3 * lease):
		case <-ctx.Done():
			return ctx.Err()
		}
		close(finished)
		return nil
	}
	run(t, b, h)
	run(t, b, h)
	select {
	case <-finished:
	case <-time.After(waitTimeout):
		t.Fatal("slow handler never finished")
	}
	if n := len(calls); n != 1 {
		t.Errorf("slow event handled %d times, want 1", n)
	}
	if n := attempts(t, s, "evt_slow"); n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}
}

// An older event of a key that arrives while a newer one is being handled
// waits for it: one key is never in two handlers at once.
func TestLateOlderEventWaitsForLeasedKey(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t, Options{Lease: time.Minute})
	now := time.Now()
	publish(t, b, bus.Message{ID: "evt_new", Key: "res_1", CreatedAt: now})
	c, ok := mustClaim(t, b)
	if !ok || c.msg.ID != "evt_new" {
		t.Fatalf("claim = %v, %v; want evt_new", c.msg.ID, ok)
	}
	publish(t, b, bus.Message{ID: "evt_old", Key: "res_1", CreatedAt: now.Add(-time.Minute)})
	publish(t, b, bus.Message{ID: "evt_other", Key: "res_2", CreatedAt: now})
	if c2, ok := mustClaim(t, b); !ok || c2.msg.ID != "evt_other" {
		t.Fatalf("claim = %v, %v; want evt_other (evt_old must wait for evt_new's lease)", c2.msg.ID, ok)
	}
	if c2, ok := mustClaim(t, b); ok {
		t.Fatalf("claimed %s while evt_new of the same key is leased", c2.msg.ID)
	}
	b.finish(context.Background(), c, nil)
	if c2, ok := mustClaim(t, b); !ok || c2.msg.ID != "evt_old" {
		t.Fatalf("claim = %v, %v; want evt_old once evt_new is done", c2.msg.ID, ok)
	}
}

// The listener reconnects when its connection is killed and goes on
// turning notifications into wake tokens. Not parallel: NOTIFY channels are
// database-wide, and other tests' publishes would hand out tokens too.
func TestListenerReconnects(t *testing.T) {
	b, s := newTestBus(t, Options{})
	pids := make(chan uint32, 10)
	b.onListen = func(pid uint32) { pids <- pid }
	wake := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.listen(ctx, wake)
	}()
	defer func() {
		cancel()
		<-done
	}()

	recv := func(what string) {
		t.Helper()
		select {
		case <-wake:
		case <-time.After(waitTimeout):
			t.Fatalf("no wake token: %s", what)
		}
	}
	listening := func() uint32 {
		t.Helper()
		select {
		case pid := <-pids:
			recv("after LISTEN") // the token every (re)connect hands out
			return pid
		case <-time.After(waitTimeout):
			t.Fatal("listener never listened")
			return 0
		}
	}

	pid := listening()
	publish(t, b, bus.Message{ID: "evt_1", Key: "res_1"})
	recv("after a publish")

	if _, err := s.DB.Pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, int32(pid)); err != nil {
		t.Fatal(err)
	}
	if again := listening(); again == pid {
		t.Fatalf("listening on the killed connection %d", pid)
	}
	publish(t, b, bus.Message{ID: "evt_2", Key: "res_1"})
	recv("after a publish on the new connection")
}
