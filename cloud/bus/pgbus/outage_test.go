package pgbus

import (
	"context"
	"log/slog"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
)

// TestOutcomeRecordedAfterOutage: a handler fails because the database went
// away, and the database is back a moment later. The failure must be
// recorded then and the event retried after its backoff, not left leased
// until the lease runs out: a payment confirmed half a minute after a
// one-second restart turns away a driver who has paid (seen in the fault
// suite's pg_restart).
func TestOutcomeRecordedAfterOutage(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.Listen("127.0.0.1:0", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	u.Host = proxy.Addr()
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	const lease = 20 * time.Second
	b := New(pool, Options{Lease: lease, PollInterval: 50 * time.Millisecond,
		Backoff: bus.Backoff{Min: 100 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil))})
	publish(t, b, bus.Message{ID: "evt_outage", Key: "res_1"})

	handled := make(chan time.Time, 4)
	var failed atomic.Bool
	run(t, b, func(ctx context.Context, m bus.Message) error {
		handled <- time.Now()
		if failed.CompareAndSwap(false, true) {
			// The database goes away while the handler works, and comes
			// back a moment after it has failed.
			proxy.Cut()
			time.AfterFunc(500*time.Millisecond, proxy.Restore)
			return context.DeadlineExceeded
		}
		return nil
	})
	var failedAt time.Time
	select {
	case failedAt = <-handled:
	case <-time.After(waitTimeout):
		t.Fatal("event never handled")
	}
	select {
	case at := <-handled:
		if d := at.Sub(failedAt); d > lease/2 {
			t.Errorf("retried %v after the failure: the outcome waited for the lease (%v)", d, lease)
		}
	case <-time.After(lease / 2):
		t.Fatalf("not retried within %v of an outage of 0.5 s: the outcome waited for the lease (%v)", lease/2, lease)
	}
}
