package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// BenchmarkWebhook measures webhook ingestion at the endpoint (verify,
// record in the Postgres inbox, answer) with 16 concurrent senders, and
// webhook → CONFIRMED latency under that load: each event's reservation
// is confirmed by the bus workers while the others keep arriving.
func BenchmarkWebhook(b *testing.B) {
	benchClient()
	pb := setupPayments(b, time.Hour)
	n := benchN(2000)
	lots := make([]string, (n+99)/100)
	for i := range lots {
		lots[i] = pb.createLot(b, 100)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	type res struct{ id, sess string }
	holds := make([]res, n)
	_, holdCodes, _ := runClients(b, pb.bundle, 16, n, func(i int) (string, string, any, map[string]string) {
		return "POST", "/v1/reservations", hold(lots[i%len(lots)], fmt.Sprintf("W%05d", i), start, start.Add(time.Hour)), key(fmt.Sprint("w-", i))
	})
	if holdCodes[201] != n {
		b.Fatalf("holds: %v", holdCodes)
	}
	// Statistics as a system in service has them: the holds' tables full,
	// the payment inbox analyzed while empty, the case that made claims
	// quadratic before migration 009.
	if _, err := pb.schema.DB.Pool.Exec(context.Background(), `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	rows, err := pb.schema.DB.Pool.Query(context.Background(), `SELECT id::text, checkout_session_id FROM reservations`)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for rows.Next() {
		_ = rows.Scan(&holds[i].id, &holds[i].sess)
		i++
	}
	rows.Close()
	payloads := make([][]byte, n)
	for i, h := range holds {
		payloads[i] = []byte(fmt.Sprintf(`{"id":"evt_bench_%d","object":"event","api_version":"2023-10-16","created":%d,"type":"checkout.session.completed","data":{"object":{"id":%q,"object":"checkout.session","client_reference_id":%q,"payment_status":"paid","payment_intent":"pi_bench_%d","metadata":{"reservation_id":%q}}}}`,
			i, time.Now().Unix(), h.sess, h.id, i, h.id))
	}
	sent := make([]time.Time, n)
	var mu sync.Mutex
	b.ResetTimer()
	send := func(i int) (string, string, any, map[string]string) {
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		return "POST", "/v1/payments/webhook", payloads[i], map[string]string{
			"Stripe-Signature": stripefake.SignatureHeader(payloads[i], time.Now(), whSecret)}
	}
	var lat *latencies
	var codes map[int]int
	var el time.Duration
	if rate, err := strconv.Atoi(os.Getenv("BENCH_RATE")); err == nil && rate > 0 {
		// Paced: events offered at BENCH_RATE per second, as Stripe sends
		// them, to find the rate at which confirmation keeps up.
		lat, codes, el = paced(b, pb.bundle, rate, n, send)
	} else {
		lat, codes, el = runClients(b, pb.bundle, 16, n, send)
	}
	if codes[200] != n {
		b.Fatalf("webhook statuses %v", codes)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	b.ReportMetric(ms(lat.pct(.5)), "endpoint_p50_ms")
	b.ReportMetric(ms(lat.pct(.99)), "endpoint_p99_ms")

	// Wait for every confirmation; updated_at is stamped in the confirming
	// transaction.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var c int
		_ = pb.schema.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM reservations WHERE status = 'CONFIRMED'`).Scan(&c)
		if c == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d confirmed", c, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idx := map[string]int{}
	for i, h := range holds {
		idx[h.id] = i
	}
	rows, _ = pb.schema.DB.Pool.Query(context.Background(), `SELECT id::text, updated_at FROM reservations`)
	conf := &latencies{}
	for rows.Next() {
		var id string
		var at time.Time
		_ = rows.Scan(&id, &at)
		conf.add(at.Sub(sent[idx[id]]))
	}
	rows.Close()
	b.ReportMetric(ms(conf.pct(.5)), "to_confirmed_p50_ms")
	b.ReportMetric(ms(conf.pct(.99)), "to_confirmed_p99_ms")
}

// paced sends n requests at rate per second, each on its own goroutine.
func paced(b *testing.B, bd *bundle, rate, n int, next func(i int) (string, string, any, map[string]string)) (*latencies, map[int]int, time.Duration) {
	lat := &latencies{}
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	// An open-loop schedule: request i is due at start + i/rate, and one
	// that falls behind is sent at once rather than skipped (a Ticker drops
	// ticks, which would offer less than the rate asked for).
	every := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			method, path, body, hdr := next(i)
			t0 := time.Now()
			r := bd.do(b, method, path, body, hdr)
			lat.add(time.Since(t0))
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, codes, time.Since(start)
}
