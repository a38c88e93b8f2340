package relay

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// BenchmarkConfirmToEdge measures what a driver waits for at the gate after
// paying: from the transaction that confirms a reservation (and writes its
// outbox row) to an edge's MQTT subscription receiving the signed change.
// Each round confirms 1,000 reservations through the shared broker and
// reports percentiles over all rounds: Loaded spreads them over four lots
// written concurrently, as fast as the database commits; OneByOne confirms
// the next only once the previous has arrived, the latency of a quiet
// system.
func BenchmarkConfirmToEdge(b *testing.B) {
	b.Run("Loaded", func(b *testing.B) { benchConfirmToEdge(b, false) })
	b.Run("OneByOne", func(b *testing.B) { benchConfirmToEdge(b, true) })
}

func benchConfirmToEdge(b *testing.B, oneByOne bool) {
	f := setup(b)
	url := sharedBrokerURL()
	const lotsN, perRound = 4, 1000
	lots := make([]string, lotsN)
	for i := range lots {
		lots[i] = f.lot()
	}
	sub, _ := newSubscriber(b, url, f.pub, true, lots...)
	startRelay(b, f, url, Options{})

	var (
		lat, fromCommit []time.Duration
		writing         time.Duration
	)
	ctx := context.Background()
	round := 0
	for b.Loop() {
		// Pending holds, made outside the measured path; each confirmation
		// below is one statement, as the payment worker's would be.
		b.StopTimer()
		ids := make([][]string, lotsN)
		for l, lot := range lots {
			for i := range perRound / lotsN {
				ids[l] = append(ids[l], f.reservation(lot, protocol.StatusPending, "AB123C", round*perRound+i))
			}
		}
		round++
		b.StartTimer()

		sent := make(map[string]time.Time, perRound)
		committed := make(map[string]time.Time, perRound)
		var mu sync.Mutex
		write := func(ids []string) {
			for _, id := range ids {
				t0 := time.Now()
				if _, err := f.pool.Exec(ctx, `SELECT * FROM parkgate_change($1, '{PENDING}', 'CONFIRMED')`, id); err != nil {
					b.Error(err)
					return
				}
				t1 := time.Now()
				mu.Lock()
				sent[id], committed[id] = t0, t1
				mu.Unlock()
				if oneByOne {
					sub.waitArrived(id, 10*time.Second)
				}
			}
		}
		w0 := time.Now()
		if oneByOne {
			for l := range lots {
				write(ids[l])
			}
		} else {
			var wg sync.WaitGroup
			for l := range lots {
				wg.Add(1)
				go func() {
					defer wg.Done()
					write(ids[l])
				}()
			}
			wg.Wait()
		}
		writing += time.Since(w0)
		for id := range sent {
			sub.waitArrived(id, 60*time.Second)
		}
		sub.mu.Lock()
		for id, t0 := range sent {
			lat = append(lat, sub.arrived[id].Sub(t0))
			fromCommit = append(fromCommit, sub.arrived[id].Sub(committed[id]))
		}
		sub.mu.Unlock()
	}
	if errs := sub.errors(); len(errs) > 0 {
		b.Fatalf("bad messages: %v", errs[0])
	}
	slices.Sort(lat)
	slices.Sort(fromCommit)
	q := func(d []time.Duration, p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.50), "p50_ms")
	b.ReportMetric(q(lat, 0.99), "p99_ms")
	b.ReportMetric(q(lat, 1), "max_ms")
	// The same from the moment the confirming statement returned, i.e.
	// without the commit's own time: what the relay and broker add.
	b.ReportMetric(q(fromCommit, 0.99), "p99_after_commit_ms")
	b.ReportMetric(float64(len(lat)), "changes")
	b.ReportMetric(float64(len(lat))/writing.Seconds(), "confirms/s")
}
