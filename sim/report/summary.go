package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
)

// Stats are percentiles of a set of durations.
type Stats struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// String is "p50 1.2ms · p99 4ms · max 9ms (n=120)".
func (s Stats) String() string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("p50 %s · p99 %s · max %s  (n=%d)", dur(s.P50), dur(s.P99), dur(s.Max), s.N)
}

// NewStats computes percentiles (nearest rank) of ds.
func NewStats(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Stats{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// dur prints a duration with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e3, 'g', 3, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d)/1e9, 'g', 3, 64) + "s"
}

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
	Completed    int     `json:"completed"`     // journeys that ended as planned
	Plans        []Count `json:"plans"`         // arrival/payment plan mix
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
	Count    int   `json:"count"`
	Expected int   `json:"expected"` // paid sessions the cloud did not honour
	Amount   int64 `json:"amount"`   // minor units
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

// span is the time from the first to the last of ts, at least a second.
type span struct{ first, last time.Time }

func (p *span) add(t time.Time) {
	if p.first.IsZero() || t.Before(p.first) {
		p.first = t
	}
	if t.After(p.last) {
		p.last = t
	}
}

func (p *span) seconds() float64 { return max(1, p.last.Sub(p.first).Seconds()) }

// throughput is each rate over the time that kind of work was going on, so
// the tail of the last cars' stays does not dilute the booking rate.
func throughput(run *sim.Run, h Holds) *Load {
	var holds, reads, entries span
	nEntries := 0
	for _, j := range run.Journeys {
		for _, a := range j.Holds {
			holds.add(a.At)
		}
	}
	for _, rd := range run.Reads {
		reads.add(rd.SentAt)
		if rd.Direction == protocol.DirectionEntry && rd.Open() {
			entries.add(rd.SentAt)
			nEntries++
		}
	}
	return &Load{Seconds: run.Ended.Sub(run.Started).Seconds(),
		HoldsPerSec: float64(h.Created) / holds.seconds(), ReadsPerSec: float64(len(run.Reads)) / reads.seconds(),
		EntriesPerS: float64(nEntries) / entries.seconds(), HoldRequests: h.Requests}
}

func (s *Summary) journeys(run *sim.Run) {
	j := &s.Journeys
	j.Drivers = len(run.Journeys)
	plans := map[string]int{}
	earlyDeny := map[int]bool{}
	for _, rd := range run.Reads {
		if rd.Direction == protocol.DirectionEntry && rd.Reason == protocol.ReasonTooEarly {
			earlyDeny[rd.Driver] = true
		}
	}
	for _, jn := range run.Journeys {
		plans[string(jn.Plan.Arrival)+"/"+string(jn.Plan.Payment)]++
		if jn.Plan.Arrival == sim.ArrivalIntruder {
			j.Intruders++
			if jn.Entered() {
				j.IntrudersIn++
			}
			continue
		}
		if jn.ReservationID != "" {
			j.Booked++
		} else {
			j.HoldRefused++
		}
		switch {
		case jn.Paid():
			j.Paid++
			if !jn.WebhookAt.IsZero() && jn.WebhookAt.After(jn.HoldExpiresAt) {
				j.PaidLate++
			}
		case jn.PayErr != "":
			j.PayRefused++
		case jn.ReservationID != "":
			j.PayAbandoned++
		}
		if jn.Entered() {
			j.Entered++
		}
		if !jn.ExitedAt.IsZero() {
			j.Exited++
			if !jn.EndsAt.IsZero() && jn.ExitedAt.After(jn.EndsAt.Add(run.Config.ExitGrace)) {
				j.Overstayed++
			}
		}
		if earlyDeny[jn.Driver] {
			j.TooEarly++
		}
		if jn.Paid() && jn.Plan.Arrival == sim.ArrivalNoShow {
			j.NoShow++
		}
		if jn.Plan.Arrival == sim.ArrivalLate && jn.Paid() {
			j.CameLate++
		}
	}
	j.Plans = counts(plans)
}

func (s *Summary) holds(run *sim.Run) {
	h := &s.Holds
	out := map[string]int{}
	var lat []time.Duration
	for _, jn := range run.Journeys {
		for k, a := range jn.Holds {
			if a.Status == 0 && k+1 < len(jn.Holds) {
				h.Retried++ // no answer, then the same key again
				break
			}
		}
		for _, a := range jn.Holds {
			h.Requests++
			if a.Replayed {
				h.Replayed++
			}
			key := "timeout/error"
			if a.Status != 0 {
				key = strconv.Itoa(a.Status)
				if a.Code != "" {
					key += " " + a.Code
				}
				lat = append(lat, a.Latency)
			}
			out[key]++
		}
		if jn.ReservationID != "" {
			h.Created++
		}
	}
	h.Outcomes = counts(out)
	h.Latency = NewStats(lat)
	given := map[string]bool{}
	plates := map[string]bool{}
	for _, jn := range run.Journeys {
		given[jn.ReservationID] = true
		plates[jn.Plate] = true
	}
	for _, r := range run.Reservations {
		if plates[r.Plate] && !given[r.ID] {
			h.Orphans++
		}
	}
}

func (s *Summary) decisions(run *sim.Run) {
	m := map[string]int{}
	for _, rd := range run.Reads {
		if rd.Decision == "" {
			if rd.Err == "camera missed" {
				m[rd.Direction+" camera missed"]++
			} else {
				m[rd.Direction+" no answer"]++
			}
			continue
		}
		m[rd.Direction+" "+rd.Decision+" "+rd.Reason]++
		if rd.Offline {
			s.Offline.Decisions++
			if rd.Open() {
				s.Offline.Opens++
			}
		}
	}
	s.Decisions = counts(m)
	for _, ge := range run.GateEvents {
		if ge.Offline {
			s.Offline.Flagged++
		}
	}
}

func (s *Summary) refunds(run *sim.Run) {
	honoured := map[string]bool{}
	for _, r := range run.Reservations {
		switch r.Status {
		case protocol.StatusConfirmed, protocol.StatusCheckedIn, protocol.StatusCompleted:
			honoured[r.ID] = true
		}
	}
	for _, p := range run.Payments {
		if p.Paid() && !honoured[p.ReservationID] {
			s.Refunds.Expected++
		}
	}
	for _, r := range run.Refunds {
		s.Refunds.Count++
		s.Refunds.Amount += r.Amount
	}
}

func (s *Summary) latency(run *sim.Run) {
	var barrier, answer, decided, trigger []time.Duration
	untriggered := 0
	for _, rd := range run.Reads {
		if !rd.LoopAt.IsZero() {
			if rd.TriggerAt.IsZero() {
				untriggered++
			} else {
				trigger = append(trigger, rd.TriggerAt.Sub(rd.LoopAt))
			}
		}
		if rd.Decision == "" {
			continue
		}
		answer = append(answer, rd.RTT)
		decided = append(decided, time.Duration(rd.DecidedInUs)*time.Microsecond)
		if rd.Open() && !rd.BarrierAt.IsZero() {
			barrier = append(barrier, rd.BarrierAt.Sub(rd.SentAt))
		}
	}
	s.Latency = Latency{ReadToBarrier: NewStats(barrier), ReadToAnswer: NewStats(answer), Decision: NewStats(decided),
		LoopToTrigger: NewStats(trigger), Untriggered: untriggered}
	src, kind := barrier, "camera read → barrier relay"
	if len(src) == 0 {
		src, kind = answer, "camera read → gate answer"
	}
	s.Series.Latency, s.Series.LatencyKind = histogram(src), kind
}

func (s *Summary) sync(run *sim.Run) {
	var on, off []time.Duration
	for _, ge := range run.GateEvents {
		lag := ge.ReceivedAt.Sub(ge.OccurredAt)
		if lag < 0 {
			lag = 0
		}
		if ge.Offline {
			off = append(off, lag)
		} else {
			on = append(on, lag)
		}
	}
	s.Sync = Sync{Lag: NewStats(on), OfflineLag: NewStats(off), Events: len(run.GateEvents)}
	s.Sync.Down, s.Sync.DownEvery = downLag(run), run.EdgeSeqEvery
}

// downLag is, for every reservation change, the time from its commit to the
// first sample of its lot's edge at or past its sequence number.
func downLag(run *sim.Run) Stats {
	byLot := map[string][]sim.SeqSample{}
	for _, x := range run.EdgeSeqs {
		byLot[x.LotID] = append(byLot[x.LotID], x)
	}
	var lags []time.Duration
	for _, c := range run.Changes {
		if c.CreatedAt.IsZero() {
			continue
		}
		for _, x := range byLot[c.LotID] {
			if x.Seq >= c.Seq && !x.At.Before(c.CreatedAt) {
				lags = append(lags, x.At.Sub(c.CreatedAt))
				break
			}
		}
	}
	return NewStats(lags)
}

// histogram puts durations in logarithmic buckets, four per decade, from
// the smallest to the largest value.
func histogram(ds []time.Duration) []Bucket {
	if len(ds) == 0 {
		return nil
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	lo = max(lo, time.Microsecond)
	const perDecade = 4
	start := math.Floor(math.Log10(float64(lo)) * perDecade)
	end := math.Floor(math.Log10(float64(max(hi, lo)))*perDecade) + 1
	var out []Bucket
	for e := start; e < end; e++ {
		out = append(out, Bucket{
			Lo: time.Duration(math.Pow(10, e/perDecade)),
			Hi: time.Duration(math.Pow(10, (e+1)/perDecade)),
		})
	}
	for _, d := range ds {
		d = max(d, time.Microsecond)
		i := int(math.Floor(math.Log10(float64(d))*perDecade) - start)
		out[max(0, min(i, len(out)-1))].Count++
	}
	return out
}

func (s *Summary) series(run *sim.Run) {
	t0 := run.Started
	end := run.Ended
	if end.IsZero() || end.Before(t0) {
		end = t0
	}
	sec := func(t time.Time) float64 { return t.Sub(t0).Seconds() }
	s.Series.RunSeconds = sec(end)
	names := map[string]string{}
	s.Series.Capacity = map[string]int{}
	s.Series.Occupancy = map[string][]Point{}
	for _, l := range run.Lots {
		names[l.ID] = l.Name
		s.Series.Capacity[l.Name] = l.Spots
		s.Series.Occupancy[l.Name] = []Point{{0, 0}}
	}
	for _, o := range run.Occupancy {
		n := names[o.LotID]
		s.Series.Occupancy[n] = append(s.Series.Occupancy[n], Point{sec(o.At), float64(o.Inside)})
	}
	// Events per minute, in buckets small enough to show a one-minute run.
	bucket := max(5.0, math.Ceil(s.Series.RunSeconds/30))
	nb := int(math.Ceil(s.Series.RunSeconds/bucket)) + 1
	open, deny := make([]float64, nb), make([]float64, nb)
	for _, rd := range run.Reads {
		if rd.Decision == "" {
			continue
		}
		i := int(sec(rd.SentAt) / bucket)
		if i < 0 || i >= nb {
			continue
		}
		if rd.Open() {
			open[i]++
		} else {
			deny[i]++
		}
	}
	perMin := 60 / bucket
	for i := range nb {
		s.Series.EventsOpen = append(s.Series.EventsOpen, Point{float64(i) * bucket, open[i] * perMin})
		s.Series.EventsDeny = append(s.Series.EventsDeny, Point{float64(i) * bucket, deny[i] * perMin})
	}
	s.Series.EventsBucket = bucket
	for _, f := range run.Faults {
		to := f.Until
		if to.IsZero() {
			to = f.At
		}
		label := f.Kind
		if f.Target != "" {
			label += " " + f.Target
		}
		s.Series.Faults = append(s.Series.Faults, FaultSpan{From: sec(f.At), To: sec(to), Label: label, Kind: f.Kind, Target: f.Target})
	}
}
