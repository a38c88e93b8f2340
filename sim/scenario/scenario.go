package scenario

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/traffic"
)

// Size is how big a run is.
type Size struct {
	Lots     int
	Spots    int
	Drivers  int
	Duration time.Duration
	Rate     float64 // drivers per second (load mode)
}

// FaultKind names a fault the runner can inject.
type FaultKind string

const (
	FaultPGRestart        FaultKind = "pg_restart"        // the run's own Postgres restarted (fast shutdown) mid-load
	FaultRedisRestart     FaultKind = "redis_restart"     // the run's own Redis restarted, empty
	FaultCloudKill        FaultKind = "cloud_kill"        // parkcloud kill -9, started again on the same address
	FaultEdgeKill         FaultKind = "edge_kill"         // a lot's parkedge kill -9, started again on its data dir
	FaultEdgeDiskFull     FaultKind = "edge_disk_full"    // a lot's disk filled while its uplink is cut (the outbox must grow), then room made
	FaultEdgeCut          FaultKind = "edge_cut"          // a lot's uplink (broker and cloud API) cut for a while
	FaultBrokerRestart    FaultKind = "broker_restart"    // Mosquitto stopped and started, persistence kept
	FaultWebhookRedeliver FaultKind = "webhook_redeliver" // every payment event so far delivered again, twice, newest first
	FaultWebhookReplay    FaultKind = "webhook_replay"    // every accepted delivery posted again byte for byte, old signature and all
)

// Fault is one scheduled fault; At and For are offsets and lengths within
// the run.
type Fault struct {
	Kind FaultKind
	At   time.Duration
	For  time.Duration // edge_cut and edge_disk_full
	Lot  int           // edge_cut and edge_kill
}

// Scenario is a named run.
type Scenario struct {
	Name    string
	Summary string
	Default Size
	// Policy of the edges and the cloud for this scenario.
	HoldTTL    time.Duration
	EarlyGrace time.Duration
	ExitGrace  time.Duration
	// LotRate is PARKGATE_LOT_RATE for a size; nil is the cloud's default.
	LotRate func(sz Size) string
	Noise   traffic.Noise
	// FreeCancellation is a lot's cancellation policy for a size; nil is
	// the cloud's default (free until the start).
	FreeCancellation func(sz Size, lot int) time.Duration
	// Plan makes the drivers' plans for a size.
	Plan func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan
	// Faults schedules the faults for a size.
	Faults func(sz Size) []Fault
	// Expect are the checks this scenario adds to the invariants: what it
	// exists to show, so that a run which never exercised it cannot pass.
	Expect []Expectation
	// Load marks the load mode: drivers arrive at Size.Rate.
	Load bool
	// Private runs the run's own Postgres and Redis, so that its faults can
	// restart them, and puts the edges' data on disks it can fill.
	Private bool
}

// span is a random duration in [lo, hi).
func span(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

func frac(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// pick chooses from weighted options.
func pick[T any](rng *rand.Rand, opts []T, weights []float64) T {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	r := rng.Float64() * total
	for i, w := range weights {
		if r < w {
			return opts[i]
		}
		r -= w
	}
	return opts[len(opts)-1]
}

// window plans a booking that starts between lo and hi into the run, lasts
// stay, and is booked early enough that even an early car can be refused
// first.
func (sc *Scenario) window(rng *rand.Rand, p *sim.Plan, lo, hi, stayLo, stayHi time.Duration) {
	p.Start = span(rng, lo, hi)
	p.Stay = span(rng, stayLo, stayHi)
	latest := p.Start - sc.EarlyGrace - 5*time.Second
	p.BookAt = span(rng, 0, max(latest, time.Millisecond))
}

var all = map[string]*Scenario{}

func register(sc *Scenario) { all[sc.Name] = sc }

// Get returns the named scenario.
func Get(name string) (*Scenario, error) {
	sc, ok := all[name]
	if !ok {
		return nil, fmt.Errorf("no scenario %q (parksim list shows them)", name)
	}
	return sc, nil
}

// List returns every scenario, by name.
func List() []*Scenario {
	out := make([]*Scenario, 0, len(all))
	for _, sc := range all {
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func init() {
	register(&Scenario{
		Name:    "happy",
		Summary: "drivers book, pay at once, arrive on time, leave on time; cameras are noisy, nothing else goes wrong",
		Default: Size{Lots: 2, Spots: 8, Drivers: 16, Duration: 25 * time.Second},
		HoldTTL: time.Minute, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise: traffic.DefaultNoise(),
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			ps := make([]sim.Plan, sz.Drivers)
			for i := range ps {
				ps[i] = sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: i % sz.Lots}
				sc.window(rng, &ps[i], 9*time.Second, max(frac(sz.Duration, 0.4), 10*time.Second), max(frac(sz.Duration, 0.3), 6*time.Second), max(frac(sz.Duration, 0.45), 8*time.Second))
			}
			return ps
		},
		Expect: []Expectation{expectEntered()},
	})

	register(&Scenario{
		Name: "offline-edge",
		Summary: "the first lot's uplink (broker and cloud API) is cut for a while: its gate decides from its own store, " +
			"bookings made meanwhile reach it after the link returns, and every event it made reaches the cloud",
		Default: Size{Lots: 2, Spots: 8, Drivers: 16, Duration: 30 * time.Second},
		HoldTTL: time.Minute, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise: traffic.DefaultNoise(),
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			cutFrom, cutTo := offlineCut(sz)
			ps := make([]sim.Plan, sz.Drivers)
			for i := range ps {
				p := sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: i % sz.Lots}
				if i%4 < 2 {
					// Booked before the cut, arriving and leaving while the lot is offline.
					p.Start = cutFrom + span(rng, time.Second, max(frac(cutTo-cutFrom, 0.3), 2*time.Second))
					p.Stay = span(rng, frac(cutTo-cutFrom, 0.4), frac(cutTo-cutFrom, 0.6))
					p.BookAt = span(rng, 0, max(cutFrom-4*time.Second, time.Millisecond))
				} else {
					// Booked during the cut: the lot learns of it after,
					// once its link is back and it has caught up.
					p.BookAt = cutFrom + span(rng, time.Second, frac(cutTo-cutFrom, 0.5))
					p.Start = cutTo + span(rng, time.Second, 3*time.Second)
					p.Stay = span(rng, 8*time.Second, 10*time.Second)
				}
				ps[i] = p
			}
			return ps
		},
		Faults: func(sz Size) []Fault {
			from, to := offlineCut(sz)
			return []Fault{{Kind: FaultEdgeCut, At: from, For: to - from, Lot: 0}}
		},
		Expect: []Expectation{expectEntered(), expectOffline()},
	})

	register(&Scenario{
		Name: "late-payment",
		Summary: "holds are short; some drivers pay as the hold runs out (the payment reaches the cloud after it ended), " +
			"some come back after it ended, some never pay; every payment event is delivered again, twice, newest first",
		Default: Size{Lots: 1, Spots: 10, Drivers: 12, Duration: 25 * time.Second},
		HoldTTL: 6 * time.Second, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise: traffic.DefaultNoise(),
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			ps := make([]sim.Plan, sz.Drivers)
			kinds := []sim.Payment{sim.PayNow, sim.PayLate, sim.PayLate, sim.PayNever, sim.PayAfterExpiry, sim.PayNow}
			for i := range ps {
				ps[i] = sim.Plan{Arrival: sim.ArrivalOnTime, Payment: kinds[i%len(kinds)], Lot: i % sz.Lots}
				ps[i].BookAt = span(rng, 0, 2*time.Second)
				ps[i].Start = span(rng, 11*time.Second, 13*time.Second)
				ps[i].Stay = span(rng, frac(sz.Duration, 0.2), frac(sz.Duration, 0.3))
			}
			return ps
		},
		Faults: func(sz Size) []Fault {
			return []Fault{{Kind: FaultWebhookRedeliver, At: 10 * time.Second}, {Kind: FaultWebhookRedeliver, At: frac(sz.Duration, 0.8)}}
		},
		Expect: []Expectation{expectRefunds(), expectEntered()},
	})

	register(&Scenario{
		Name: "broker-restart",
		Summary: "the MQTT broker is restarted twice while cars come and go: edges keep deciding, queue their events, " +
			"and reconnect; the relay and the ingest pick up where they were",
		Default: Size{Lots: 2, Spots: 8, Drivers: 16, Duration: 30 * time.Second},
		HoldTTL: time.Minute, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise: traffic.DefaultNoise(),
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			ps := make([]sim.Plan, sz.Drivers)
			for i := range ps {
				ps[i] = sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: i % sz.Lots}
				sc.window(rng, &ps[i], 9*time.Second, frac(sz.Duration, 0.55), max(frac(sz.Duration, 0.3), 6*time.Second), max(frac(sz.Duration, 0.45), 8*time.Second))
			}
			return ps
		},
		Faults: func(sz Size) []Fault {
			return []Fault{{Kind: FaultBrokerRestart, At: frac(sz.Duration, 0.5)}, {Kind: FaultBrokerRestart, At: frac(sz.Duration, 0.7)}}
		},
		Expect: []Expectation{expectEntered(), expectRestarted()},
	})

	register(&Scenario{
		Name: "hot-lot",
		Summary: "many drivers want the same few spots of one lot for the same window at the same moment: " +
			"exactly as many holds as there are spots, everyone else answered 409 or 429, no overlap",
		Default: Size{Lots: 1, Spots: 3, Drivers: 40, Duration: 20 * time.Second},
		HoldTTL: time.Minute, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		// Tight enough that a rush meets 429s, loose enough that the lot
		// fills while its drivers still try (about three attempts in
		// three seconds): at 10/20 fixed, 1,000 drivers got 48 of 50
		// spots held and gave up.
		LotRate: func(sz Size) string {
			r := max(10, sz.Spots)
			return fmt.Sprintf("%d/%d", r, 2*r)
		},
		Noise: traffic.DefaultNoise(),
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			ps := make([]sim.Plan, sz.Drivers)
			for i := range ps {
				net := sim.NetworkOK
				if i%5 == 0 {
					net = sim.NetworkLostAnswer
				}
				ps[i] = sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: 0, Network: net,
					BookAt: span(rng, 0, 50*time.Millisecond), Start: 10 * time.Second, Stay: frac(sz.Duration, 0.3)}
			}
			return ps
		},
		Expect: []Expectation{expectExactFill(), expectEntered()},
	})

	register(&Scenario{
		Name: "flaky-network",
		Summary: "phones on a bad network: some hold requests are answered but the answer is lost, some apps give up " +
			"after a few milliseconds while the cloud is still at work; every retry uses the same Idempotency-Key",
		Default: Size{Lots: 2, Spots: 8, Drivers: 16, Duration: 25 * time.Second},
		HoldTTL: time.Minute, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise: traffic.DefaultNoise(),
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			nets := []sim.Network{sim.NetworkLostAnswer, sim.NetworkImpatient, sim.NetworkOK}
			ps := make([]sim.Plan, sz.Drivers)
			for i := range ps {
				ps[i] = sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: i % sz.Lots, Network: nets[i%len(nets)]}
				sc.window(rng, &ps[i], 9*time.Second, max(frac(sz.Duration, 0.4), 10*time.Second), max(frac(sz.Duration, 0.3), 6*time.Second), max(frac(sz.Duration, 0.45), 8*time.Second))
			}
			return ps
		},
		Expect: []Expectation{expectReplayed(), expectEntered()},
	})

	register(&Scenario{
		Name: "demo",
		Summary: "a minute of everything on several lots: on time, early, late, overstaying and no-show cars, intruders, " +
			"noisy cameras, flaky phones, late and abandoned payments, an edge cut off, a broker restart, webhooks redelivered",
		Default: Size{Lots: 3, Spots: 8, Drivers: 36, Duration: 60 * time.Second},
		HoldTTL: 8 * time.Second, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise:            traffic.DefaultNoise(),
		Plan:             planMix,
		FreeCancellation: demoPolicy,
		Faults: func(sz Size) []Fault {
			fs := []Fault{
				{Kind: FaultEdgeCut, At: frac(sz.Duration, 0.25), For: frac(sz.Duration, 0.25), Lot: min(1, sz.Lots-1)},
				{Kind: FaultBrokerRestart, At: frac(sz.Duration, 0.62)},
				{Kind: FaultWebhookRedeliver, At: frac(sz.Duration, 0.7)},
			}
			return fs
		},
		Expect: []Expectation{expectRefunds(), expectOffline(), expectEntered(), expectLifecycle(), expectPermits()},
	})

	register(&Scenario{
		Name:    "load",
		Summary: "load mode: drivers arrive at --rate per second for --duration, each books, pays, enters and leaves; reports throughput and latency",
		Default: Size{Lots: 4, Spots: 40, Duration: 30 * time.Second, Rate: 5},
		HoldTTL: time.Minute, EarlyGrace: 3 * time.Second, ExitGrace: 2 * time.Second,
		Noise: traffic.Noise{Miss: 0.02, LookAlike: 0.03, Drop: 0.01, Low: 0.02, Mean: 0.94, Spread: 0.03},
		Load:  true,
		Plan: func(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
			n := int(sz.Rate * sz.Duration.Seconds())
			ps := make([]sim.Plan, n)
			for i := range ps {
				at := time.Duration(float64(i) / sz.Rate * float64(time.Second))
				ps[i] = sim.Plan{Arrival: sim.ArrivalOnTime, Payment: sim.PayNow, Lot: i % sz.Lots,
					BookAt: at, Start: at + sc.EarlyGrace + 5*time.Second, Stay: span(rng, 4*time.Second, 8*time.Second)}
			}
			return ps
		},
		Expect: []Expectation{expectEntered()},
	})
}

// offlineCut is when the offline-edge scenario's cut happens.
func offlineCut(sz Size) (from, to time.Duration) {
	return max(frac(sz.Duration, 0.25), 8*time.Second), max(frac(sz.Duration, 0.6), 16*time.Second)
}

// planMix is the demo's mix of drivers.
func planMix(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
	arrivals := []sim.Arrival{sim.ArrivalOnTime, sim.ArrivalEarly, sim.ArrivalLate, sim.ArrivalOverstay, sim.ArrivalNoShow, sim.ArrivalIntruder}
	aw := []float64{0.52, 0.12, 0.06, 0.12, 0.06, 0.12}
	pays := []sim.Payment{sim.PayNow, sim.PayLate, sim.PayNever, sim.PayAfterExpiry}
	pw := []float64{0.8, 0.1, 0.05, 0.05}
	d := sz.Duration
	ps := make([]sim.Plan, sz.Drivers)
	for i := range ps {
		p := sim.Plan{Arrival: pick(rng, arrivals, aw), Payment: pick(rng, pays, pw), Lot: i % sz.Lots}
		if rng.IntN(6) == 0 {
			p.Network = sim.NetworkLostAnswer
		}
		// The first few drivers show each behaviour at least once.
		switch i {
		case 0:
			p.Payment = sim.PayLate
		case 1:
			p.Arrival = sim.ArrivalEarly
		case 2:
			p.Arrival = sim.ArrivalOverstay
		case 3:
			p.Arrival = sim.ArrivalIntruder
		case 4:
			p.Arrival, p.Lot = sim.ArrivalOnTime, min(1, sz.Lots-1) // at the lot that will be cut
		}
		if p.Payment != sim.PayNow && p.Arrival != sim.ArrivalIntruder {
			p.Arrival = sim.ArrivalOnTime // a driver who did not pay comes and is refused
		}
		sc.window(rng, &p, 10*time.Second, frac(d, 0.6), max(frac(d, 0.12), 6*time.Second), max(frac(d, 0.28), 9*time.Second))
		if p.Payment != sim.PayNow {
			// Time for the hold to run out before the car would come.
			p.BookAt = span(rng, 0, 2*time.Second)
			p.Start = max(p.Start, p.BookAt+sc.HoldTTL+6*time.Second)
		}
		ps[i] = p
	}
	lifeMix(rng, sz, ps)
	return append(ps, permitMix(rng, sz, sc)...)
}

// permitMix adds the permit holders of issue 15 after the booking
// drivers: two per lot who come and go, one per lot whose permit is
// revoked before it comes, and on the first lot one whose exit read is
// missed, so the operator resets its presence (on the lot the demo cuts
// off, when there are two, so the reset may have to wait for the uplink).
func permitMix(rng *rand.Rand, sz Size, sc *Scenario) []sim.Plan {
	d := sz.Duration
	var ps []sim.Plan
	for lot := range sz.Lots {
		for _, a := range []sim.Arrival{sim.ArrivalPermit, sim.ArrivalPermit, sim.ArrivalRevoked} {
			p := sim.Plan{Arrival: a, Lot: lot}
			sc.window(rng, &p, 8*time.Second, frac(d, 0.6), max(frac(d, 0.08), 4*time.Second), max(frac(d, 0.2), 6*time.Second))
			ps = append(ps, p)
		}
	}
	p := sim.Plan{Arrival: sim.ArrivalPermit, Life: sim.LifeReset, Lot: min(1, sz.Lots-1)}
	sc.window(rng, &p, 6*time.Second, frac(d, 0.2), max(frac(d, 0.15), 6*time.Second), max(frac(d, 0.2), 8*time.Second))
	return append(ps, p)
}

// demoPolicy gives the first of several lots a free cancellation of an
// hour, longer than any simulated booking is ahead: every cancellation of a
// confirmed booking there is out of policy. The others are free until the
// start.
func demoPolicy(sz Size, lot int) time.Duration {
	if lot == 0 && sz.Lots > 1 {
		return time.Hour
	}
	return 0
}

// lifeMix gives a small share of the drivers a lifecycle journey (issue
// 14): the first ones after planMix's show-cases each one once, then about
// one in twelve of the drivers who pay at once and come on time.
func lifeMix(rng *rand.Rand, sz Size, ps []sim.Plan) {
	strict := 0 // the lot whose policy makes every cancellation late (demoPolicy)
	free := sz.Lots - 1
	set := func(p *sim.Plan, life sim.Life) {
		p.Life, p.Payment, p.Network, p.Arrival = life, sim.PayNow, sim.NetworkOK, sim.ArrivalOnTime
		switch life {
		case sim.LifeCancelIn, sim.LifeExtend:
			p.Lot = free
		case sim.LifeCancelOut:
			p.Lot = strict
		case sim.LifeOverstayPay:
			p.Arrival = sim.ArrivalOverstay
		}
	}
	lives := []sim.Life{sim.LifeCancelIn, sim.LifeCancelOut, sim.LifeExtend, sim.LifeOverstayPay, sim.LifeAccessCode}
	for i := range ps {
		switch {
		case i >= 5 && i < 5+len(lives):
			set(&ps[i], lives[i-5])
		case i >= 5+len(lives) && ps[i].Payment == sim.PayNow && ps[i].Arrival == sim.ArrivalOnTime && rng.IntN(12) == 0:
			set(&ps[i], lives[rng.IntN(len(lives))])
		}
	}
}
