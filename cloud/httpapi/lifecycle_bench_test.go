package httpapi_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkLifecycle measures a driver's calls through the HTTP API against
// real Postgres and the Stripe stand-in over HTTP, 8 clients at a time:
// Hold (the hold and its Checkout Session), Extend (an hour more on a
// confirmed booking: the interval held, its own session) and Cancel (a
// confirmed booking in policy: the cancellation and its refund at Stripe).
// Run with -benchtime 1x; BENCH_N sets the bookings (default 400).
func BenchmarkLifecycle(b *testing.B) {
	benchClient()
	pb := setupPayments(b, 10*time.Minute)
	n := benchN(400)
	lots := make([]string, 8)
	for i := range lots {
		lots[i] = pb.createLot(b, n/len(lots)+1)
	}
	start := time.Now().Add(6 * time.Hour).Truncate(time.Hour).UTC()
	ids, tokens, sessions := make([]string, n), make([]string, n), make([]string, n)
	lat, codes, el := runClients(b, pb.bundle, 8, n, func(i int) (string, string, any, map[string]string) {
		return "POST", "/v1/reservations", hold(lots[i%len(lots)], fmt.Sprintf("L%05d", i), start, start.Add(time.Hour)), key(fmt.Sprint("lc-", i))
	})
	report(b, "hold", lat, codes, el, n)
	rows, err := pb.schema.DB.Pool.Query(b.Context(), `
		SELECT r.id::text, k.access_token, r.checkout_session_id FROM reservations r
		  JOIN idempotency_keys k ON k.reservation_id = r.id ORDER BY r.created_at`)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for rows.Next() {
		if err := rows.Scan(&ids[i], &tokens[i], &sessions[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	rows.Close()
	for _, s := range sessions {
		if _, err := pb.fake.Pay(s); err != nil {
			b.Fatal(err)
		}
	}
	for _, id := range ids {
		pb.waitStatus(b, id, "CONFIRMED")
	}
	lat, codes, el = runClients(b, pb.bundle, 8, n, func(i int) (string, string, any, map[string]string) {
		return "POST", "/v1/reservations/" + ids[i] + "/extensions", extendTo(start.Add(2 * time.Hour)),
			withKey(bearerOf(tokens[i]), fmt.Sprint("lx-", i))
	})
	report(b, "extend", lat, codes, el, n)
	lat, codes, el = runClients(b, pb.bundle, 8, n, func(i int) (string, string, any, map[string]string) {
		return "POST", "/v1/reservations/" + ids[i] + "/cancel", nil, bearerOf(tokens[i])
	})
	report(b, "cancel", lat, codes, el, n)
	if refunds := len(pb.fake.Refunds()); refunds != n {
		b.Errorf("%d refunds, want %d", refunds, n)
	}
}

func report(b *testing.B, op string, lat *latencies, codes map[int]int, el time.Duration, n int) {
	b.ReportMetric(ms(lat.pct(.5)), op+"_p50_ms")
	b.ReportMetric(ms(lat.pct(.99)), op+"_p99_ms")
	b.ReportMetric(float64(n)/el.Seconds(), op+"/s")
	if codes[201]+codes[200] != n {
		b.Errorf("%s: statuses %v", op, codes)
	}
}
