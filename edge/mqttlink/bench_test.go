package mqttlink_test

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/protocol"
)

// BenchmarkChangeApplied measures confirmed → applied: from the cloud
// publishing a signed change to the broker until the agent has verified it
// and committed it to its store, over runs of 1,000 changes. Burst publishes
// them back to back (a relay catching up); Paced publishes one per
// millisecond (a busy lot's steady stream).
func BenchmarkChangeApplied(b *testing.B) {
	for _, tc := range []struct {
		name string
		gap  time.Duration
	}{{"Burst", 0}, {"Paced", time.Millisecond}} {
		b.Run(tc.name, func(b *testing.B) {
			bb := setupB(b)
			const n = 1000
			var lat []time.Duration
			next := int64(1)
			for b.Loop() {
				sent := make([]time.Time, n)
				applied := make([]time.Time, n)
				var mu sync.Mutex
				first := next
				done := make(chan struct{})
				bb.setOnApplied(func(seq int64) {
					now := time.Now()
					mu.Lock()
					defer mu.Unlock()
					for s := seq; s >= first && s < first+n && applied[s-first].IsZero(); s-- {
						applied[s-first] = now
					}
					if seq >= first+n-1 {
						select {
						case <-done:
						default:
							close(done)
						}
					}
				})
				changes := make([][]byte, n)
				for i := range changes {
					changes[i], _ = json.Marshal(change(bb.key, first+int64(i)))
				}
				var tokens []mqtt.Token
				for i := range changes {
					sent[i] = time.Now()
					tokens = append(tokens, bb.cloud.Publish(protocol.ReservationsTopic(lot), 1, false, changes[i]))
					if tc.gap > 0 {
						time.Sleep(tc.gap)
					}
				}
				select {
				case <-done:
				case <-time.After(60 * time.Second):
					b.Fatal("changes not applied within 60s")
				}
				for _, tok := range tokens {
					tok.Wait()
				}
				mu.Lock()
				for i := range n {
					lat = append(lat, applied[i].Sub(sent[i]))
				}
				mu.Unlock()
				next += n
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1e3, "max-ms")
		})
	}
}

type benchBundle struct {
	*bundle
	cloud     mqtt.Client
	mu        sync.Mutex
	onApplied func(int64)
}

func (bb *benchBundle) setOnApplied(f func(int64)) {
	bb.mu.Lock()
	bb.onApplied = f
	bb.mu.Unlock()
}

func setupB(b *testing.B) *benchBundle {
	bb := &benchBundle{bundle: setup(b, "", nil)}
	bb.cfg.OnApplied = func(seq int64) {
		bb.mu.Lock()
		f := bb.onApplied
		bb.mu.Unlock()
		if f != nil {
			f(seq)
		}
	}
	bb.start(b)
	bb.cloud = client(b, bb.broker.URL(), "cloud", true, nil)
	return bb
}
