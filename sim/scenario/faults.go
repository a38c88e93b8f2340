package scenario

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/stack"
)

// faultRunner injects the scheduled faults and records when they happened.
type faultRunner struct {
	st  *stack.Stack
	t0  time.Time
	log func(string, ...any)

	mu     sync.Mutex
	faults []sim.Fault
}

func (f *faultRunner) record(x sim.Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, x)
	f.mu.Unlock()
}

func (f *faultRunner) done() []sim.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]sim.Fault(nil), f.faults...)
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func (f *faultRunner) run(ctx context.Context, faults []Fault) {
	var wg sync.WaitGroup
	for _, x := range faults {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !wait(ctx, f.t0.Add(x.At)) {
				return
			}
			switch x.Kind {
			case FaultEdgeCut:
				f.cut(ctx, x)
			case FaultBrokerRestart:
				f.restart()
			case FaultWebhookRedeliver:
				f.redeliver()
			}
		}()
	}
	wg.Wait()
}

func wait(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func (f *faultRunner) cut(ctx context.Context, x Fault) {
	e := f.st.Edges[x.Lot%len(f.st.Edges)]
	at := time.Now()
	e.Cut()
	f.log("  fault: %s uplink cut for %s", e.Lot.Name, x.For)
	wait(ctx, at.Add(x.For)) // restored early when the run ends
	e.Restore()
	f.log("  fault: %s uplink restored", e.Lot.Name)
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(FaultEdgeCut), Target: e.Lot.Name,
		Detail: "broker and cloud API unreachable"})
}

func (f *faultRunner) restart() {
	at := time.Now()
	f.log("  fault: restarting the broker")
	detail := "ok"
	if err := f.st.RestartBroker(); err != nil {
		detail = err.Error()
	}
	f.log("  fault: broker back after %s", time.Since(at).Round(time.Millisecond))
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(FaultBrokerRestart), Target: "mosquitto", Detail: detail})
}

// redeliver sends every payment event so far again, twice, newest first:
// duplicates and reordering at once, as Stripe's retries produce them.
func (f *faultRunner) redeliver() {
	at := time.Now()
	var ids []string
	for _, e := range f.st.Stripe.Events() {
		ids = append(ids, e.ID)
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	detail := fmt.Sprintf("%d events ×2, newest first", len(ids))
	if len(ids) > 0 {
		// Two calls: two deliveries of each event racing each other.
		for range 2 {
			if err := f.st.Stripe.Redeliver(ids...); err != nil {
				detail = err.Error()
			}
		}
	}
	f.log("  fault: webhooks redelivered (%s)", detail)
	f.record(sim.Fault{At: at, Kind: string(FaultWebhookRedeliver), Target: "stripe", Detail: detail})
}
