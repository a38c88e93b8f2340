package alerts_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/alerts"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// BenchmarkDeliver measures draining the outbox into a receiver that
// answers at once: b.N events, one deliverer with the default workers,
// polling every 10ms. ns/op is the cost of one delivery end to end
// (claim, sign, POST, mark delivered) at that concurrency.
func BenchmarkDeliver(b *testing.B) {
	db := pgtest.New(b, 16).DB
	ctx := context.Background()
	rcv := &receiver{secret: "whsec_bench", answer: always(http.StatusOK)}
	srv := newBenchServer(b, rcv)
	if _, err := db.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: srv, Events: cloud.AlertTypes, Secret: "whsec_bench"}); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if _, err := db.Alert(ctx, cloud.AlertEdgeOnline, map[string]string{"gate_id": "g1"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = alerts.New(db, alerts.Options{Poll: 10 * time.Millisecond}).Run(rctx)
	}()
	for {
		n, err := db.PendingAlerts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	if got := len(rcv.deliveries()); got != b.N {
		b.Fatalf("%d deliveries of %d events", got, b.N)
	}
}

func newBenchServer(b *testing.B, r *receiver) string {
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	ln, err := listenLocal()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func listenLocal() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
