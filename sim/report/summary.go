package report

import (
	"sort"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
)

// Count is one row of a breakdown.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// Journeys counts what became of the drivers.
type Journeys struct {
	Drivers      int     `json:"drivers"`
	Booked       int     `json:"booked"`        // got a hold
	HoldRefused  int     `json:"hold_refused"`  // no hold: lot full, rate limited, or gave up
	Paid         int     `json:"paid"`          // money taken at Stripe
	PaidLate     int     `json:"paid_late"`     // …reaching the cloud after the hold ended
	PayAbandoned int     `json:"pay_abandoned"` // never paid
	PayRefused   int     `json:"pay_refused"`   // Stripe refused (session closed)
	Entered      int     `json:"entered"`       // got in
	Exited       int     `json:"exited"`        // got out again
	Overstayed   int     `json:"overstayed"`    // left after the window (+ grace)
	TooEarly     int     `json:"too_early"`     // refused at least once as too early
	CameLate     int     `json:"came_late"`     // came after the window ended
	NoShow       int     `json:"no_show"`       // booked and paid, never came
	Intruders    int     `json:"intruders"`     // came without booking
	IntrudersIn  int     `json:"intruders_in"`  // …and got in (must be 0)
	Completed    int     `json:"completed"`     // booked journeys that ended as planned (asPlanned)
	Plans        []Count `json:"plans"`         // arrival/payment plan mix
	Life         Life    `json:"life"`          // the lifecycle journeys
}

// Life counts the lifecycle journeys: cancellations, extensions,
// overstays and access codes.
type Life struct {
	CancelIn         int `json:"cancel_in"`          // cancellations asked within the free cancellation
	CancelInRefunded int `json:"cancel_in_refunded"` // …answered 200 and refunded
	CancelOut        int `json:"cancel_out"`         // asked after it
	CancelOutRefused int `json:"cancel_out_refused"` // …answered 409 not_cancellable
	CodeCancelled    int `json:"code_cancelled"`     // a cancelled booking's code shown at a gate
	CodeCancelledNo  int `json:"code_cancelled_no"`  // …and refused
	ExtendAsked      int `json:"extend_asked"`
	Extended         int `json:"extended"`       // paid and the window moved
	ExtendRefused    int `json:"extend_refused"` // 4xx (spot taken, not extendable)
	// ExtendRefusals are the refused extensions' answers, e.g. "409 no_availability".
	ExtendRefusals []Count `json:"extend_refusals,omitempty"`
	Overstays      int     `json:"overstays"`      // reservations owing an overstay
	OverstaysPaid  int     `json:"overstays_paid"` // …paid
	CodeShown      int     `json:"code_shown"`     // drivers at a camera-blind lane who showed their code
	CodeShownIn    int     `json:"code_shown_in"`  // …and got in
	// Permit holders (issue 15): no booking, a permit the operator made.
	Permits        int `json:"permits"`         // holders whose permit was made
	PermitsIn      int `json:"permits_in"`      // …who got in
	Revoked        int `json:"revoked"`         // holders whose permit was revoked, who came once it was synced
	RevokedRefused int `json:"revoked_refused"` // …and were refused
	Resets         int `json:"resets"`          // presence resets the operator sent for a car whose exit was missed
	ResetsIn       int `json:"resets_in"`       // …after which the car got in again
	ResetsOffline  int `json:"resets_offline"`  // …sent while the lot's edge was cut off
}

// Holds counts hold requests.
type Holds struct {
	Requests int `json:"requests"` // attempts, retries included
	Created  int `json:"created"`
	Replayed int `json:"replayed"` // answers replayed for a retried key
	Retried  int `json:"retried"`  // drivers who retried after a timeout
	// Orphans are holds made by requests whose answer the driver never got:
	// they end unpaid, but hold a spot until they do.
	Orphans  int     `json:"orphans"`
	Outcomes []Count `json:"outcomes"` // by status and code
	Latency  Stats   `json:"latency"`
}

// Refunds compares refunds made with refunds due.
type Refunds struct {
	Count    int    `json:"count"`
	Expected int    `json:"expected"` // paid sessions the cloud did not honour
	Amount   int64  `json:"amount"`   // minor units
	Currency string `json:"currency"` // of Amount: the lots', comma-separated if they differ
}

// Latency is the gate's speed seen three ways.
type Latency struct {
	ReadToBarrier Stats `json:"read_to_barrier"` // camera post sent → barrier relay edge (fake pins)
	ReadToAnswer  Stats `json:"read_to_answer"`  // camera post sent → HTTP answer
	Decision      Stats `json:"decision"`        // the agent's own decided_in_us
	LoopToTrigger Stats `json:"loop_to_trigger"` // car on the loop → camera trigger pulse (fake pins)
	Untriggered   int   `json:"untriggered"`     // cars on the loop whose camera was never triggered
}

// Sync is how long the two directions of the edge sync took.
type Sync struct {
	Lag        Stats `json:"lag"`         // gate events, received_at - occurred_at, decided online
	OfflineLag Stats `json:"offline_lag"` // the same for events decided offline
	Events     int   `json:"events"`      // gate events in the cloud
	// Down is reservation changes, from the change's commit to the edge
	// having applied it, as seen by sampling the edges every DownEvery.
	Down      Stats         `json:"down"`
	DownEvery time.Duration `json:"down_every"`
}

// Offline counts decisions made while a lot's uplink was cut.
type Offline struct {
	Decisions int `json:"decisions"`
	Opens     int `json:"opens"`
	Flagged   int `json:"flagged"` // events the edge itself marked offline
}

// Load is throughput in load mode.
type Load struct {
	Seconds      float64 `json:"seconds"`
	HoldsPerSec  float64 `json:"holds_per_sec"`
	ReadsPerSec  float64 `json:"reads_per_sec"`
	EntriesPerS  float64 `json:"entries_per_sec"`
	HoldRequests int     `json:"hold_requests"`
}

// Point is one value of a time series; T is seconds from the run's start.
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// Bucket is one bar of a histogram: [Lo, Hi).
type Bucket struct {
	Lo    time.Duration `json:"lo"`
	Hi    time.Duration `json:"hi"`
	Count int           `json:"count"`
}

// Series are the charts' data.
type Series struct {
	Latency      []Bucket           `json:"latency_histogram"`
	LatencyKind  string             `json:"latency_kind"`
	Occupancy    map[string][]Point `json:"occupancy"` // lot name → cars inside
	Capacity     map[string]int     `json:"capacity"`
	EventsOpen   []Point            `json:"events_open_per_minute"`
	EventsDeny   []Point            `json:"events_deny_per_minute"`
	EventsBucket float64            `json:"events_bucket_seconds"`
	Faults       []FaultSpan        `json:"faults"`
	RunSeconds   float64            `json:"run_seconds"`
}

// FaultSpan is a fault on the time axis, in seconds from the start.
type FaultSpan struct {
	From   float64 `json:"from"`
	To     float64 `json:"to"`
	Label  string  `json:"label"`
	Kind   string  `json:"kind"`
	Target string  `json:"target"`
}

// Summary is the report.
type Summary struct {
	Scenario   string         `json:"scenario"`
	Config     sim.Config     `json:"config"`
	Started    time.Time      `json:"started"`
	RunFor     time.Duration  `json:"run_for"`    // traffic
	SettledIn  time.Duration  `json:"settled_in"` // from the end of traffic to reading the sources of truth
	Lots       []sim.Lot      `json:"lots"`
	Journeys   Journeys       `json:"journeys"`
	Holds      Holds          `json:"holds"`
	Decisions  []Count        `json:"decisions"` // direction/decision/reason
	Refunds    Refunds        `json:"refunds"`
	Latency    Latency        `json:"gate_latency"`
	Sync       Sync           `json:"sync"`
	Offline    Offline        `json:"offline"`
	Webhooks   WebhookStats   `json:"webhooks"`
	Faults     []sim.Fault    `json:"faults"`
	Load       *Load          `json:"load,omitempty"`
	Invariants []check.Result `json:"invariants"`
	Pass       bool           `json:"pass"`
	Series     Series         `json:"series"`
	Files      Files          `json:"files"`
}

// WebhookStats counts the stand-in's deliveries.
type WebhookStats struct {
	Events     int `json:"events"`
	Deliveries int `json:"deliveries"` // > events when redelivered
}

// Files are where the report was written.
type Files struct {
	Dir  string `json:"dir"`
	JSON string `json:"json"`
	HTML string `json:"html"`
}

func counts(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Summarize computes the report of a run and its invariant results.
func Summarize(run *sim.Run, results []check.Result) *Summary {
	s := &Summary{
		Scenario:   run.Config.Scenario,
		Config:     run.Config,
		Started:    run.Started,
		RunFor:     run.Ended.Sub(run.Started).Round(time.Millisecond),
		SettledIn:  run.Settled.Sub(run.Ended).Round(time.Millisecond),
		Lots:       run.Lots,
		Faults:     run.Faults,
		Invariants: results,
		Pass:       check.Passed(results),
	}
	s.journeys(run)
	s.holds(run)
	s.decisions(run)
	s.refunds(run)
	s.latency(run)
	s.sync(run)
	for _, w := range run.Webhooks {
		s.Webhooks.Events++
		s.Webhooks.Deliveries += w.Deliveries
	}
	if run.Config.Load {
		s.Load = throughput(run, s.Holds)
	}
	s.series(run)
	return s
}
