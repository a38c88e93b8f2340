package scenario

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
	"github.com/parkgate/parkgate/sim/traffic"
)

// suite is the order the faults scenario breaks things in, one at a time,
// each after the system has had time to settle from the one before.
var suite = []FaultKind{FaultPGRestart, FaultRedisRestart, FaultBrokerRestart, FaultCloudKill,
	FaultEdgeKill, FaultEdgeDiskFull, FaultWebhookRedeliver, FaultWebhookReplay}

func init() {
	register(&Scenario{
		Name: "faults",
		Summary: "the fault suite under steady load, one fault at a time: Postgres restarted, Redis restarted, the broker " +
			"restarted, parkcloud and a parkedge killed with -9 and started again, an edge's disk filled while it is offline, " +
			"payment events duplicated, reordered, " +
			"late and replayed; after them every invariant holds. Runs its own Postgres and Redis",
		Default: Size{Lots: 2, Spots: 40, Duration: 60 * time.Second, Rate: 2},
		HoldTTL: 8 * time.Second, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise:   traffic.Noise{Miss: 0.02, LookAlike: 0.03, Drop: 0.01, Low: 0.02, Mean: 0.94, Spread: 0.03},
		Load:    true,
		Private: true,
		Plan:    planFaults,
		Faults:  faultSchedule,
		Expect:  []Expectation{expectEntered(), expectRefunds(), expectFaults()},
	})
}

// planFaults is load mode with late payers mixed in, so the payment events
// redelivered include ones that reach the cloud after their hold ended.
func planFaults(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
	n := int(sz.Rate * sz.Duration.Seconds())
	ps := make([]sim.Plan, n)
	for i := range ps {
		at := time.Duration(float64(i) / sz.Rate * float64(time.Second))
		p := sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: i % sz.Lots,
			BookAt: at, Start: at + sc.EarlyGrace + 5*time.Second, Stay: span(rng, 4*time.Second, 8*time.Second)}
		if i%8 == 3 {
			p.Payment = sim.PayLate
			p.Start = at + sc.HoldTTL + 6*time.Second
		}
		ps[i] = p
	}
	return ps
}

// faultSchedule spreads the suite over the traffic, once per 100 seconds of
// it (at least once), leaving the last part of the run fault-free.
func faultSchedule(sz Size) []Fault {
	cycles := max(1, int(sz.Duration/(100*time.Second)))
	n := cycles * len(suite)
	first, span := frac(sz.Duration, 0.1), frac(sz.Duration, 0.75)
	out := make([]Fault, 0, n)
	for i := range n {
		x := Fault{Kind: suite[i%len(suite)], At: first + span*time.Duration(i)/time.Duration(n), Lot: i / len(suite)}
		if x.Kind == FaultEdgeDiskFull {
			// Long enough for the outbox to outgrow the store's free pages,
			// and to leave room before the next fault.
			x.For, x.Lot = span/time.Duration(n)/2, x.Lot+1
		}
		out = append(out, x)
	}
	return out
}

// expectFaults: every fault of the suite happened and the system came back
// whole after it.
func expectFaults() Expectation {
	return func(run *sim.Run) check.Result {
		seen := map[string]int{}
		var v []string
		for _, f := range run.Faults {
			seen[f.Kind]++
			webhook := f.Kind == string(FaultWebhookRedeliver) || f.Kind == string(FaultWebhookReplay)
			disk := f.Kind == string(FaultEdgeDiskFull) && !strings.HasPrefix(f.Detail, "error: ")
			if !webhook && !disk && f.Detail != "ok" || strings.HasPrefix(f.Detail, "error: ") {
				v = append(v, string(f.Kind)+": "+f.Detail)
			}
		}
		for _, k := range suite {
			if seen[string(k)] == 0 {
				v = append(v, string(k)+" never happened")
			}
		}
		return result("faults", "every fault of the suite happened and the system came back whole",
			"simulator: faults", len(run.Faults), v...)
	}
}
