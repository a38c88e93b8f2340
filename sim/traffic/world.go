package traffic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// Payments is the Stripe stand-in as a driver at the checkout page uses it.
type Payments interface {
	// Pay completes the session and returns the payment intent id.
	Pay(sessionID string) (string, error)
}

// WebhookHolder is the network between Stripe and the cloud.
type WebhookHolder interface {
	HoldUntil(sessionID string, t time.Time)
	PaidSeen(sessionID string) time.Time
}

// Pins drives and reads an edge's fake pins.
type Pins interface {
	Set(ctx context.Context, name string, high bool) error
	// Rising returns the rising edges recorded on each output pin since the
	// last call, by pin name.
	Rising(ctx context.Context) (map[string][]time.Time, error)
}

// Uplink tells whether a lot's link to the broker is cut.
type Uplink interface{ IsCut() bool }

// Lot is a lot as the traffic sees it.
type Lot struct {
	sim.Lot
	Lat, Lng float64
	Pins     Pins   // nil: no fake pins (no loop detector, no barrier timing)
	Uplink   Uplink // nil: never cut
}

// Config is what the world needs.
type Config struct {
	CloudURL string
	Lots     []Lot
	Payments Payments
	Webhooks WebhookHolder
	// EarlyGrace and ExitGrace are the edges' policy, which drivers keep
	// to (or break on purpose); Pulse is the barrier's open time, which a
	// car needs to drive through.
	EarlyGrace, ExitGrace, Pulse time.Duration
	Noise                        Noise
	Seed                         uint64
	// Start is the run's time zero; plans are offsets from it.
	Start time.Time
	// LossyCloudURL reaches the cloud through a network that delivers
	// requests but loses their answers (NetworkLostAnswer).
	LossyCloudURL string
	// HTTP is the transport of every driver's and camera's requests.
	HTTP *http.Client
}

// World runs the drivers of a run.
type World struct {
	cfg    Config
	http   *http.Client
	ledger *Ledger

	lanesMu sync.Mutex
	lanes   map[string]*lane

	// pinsMu serialises taking a lot's recorded edges (each take empties
	// the agent's record); rising holds what was taken, by "lot id/pin".
	pinsMu sync.Mutex
	rising map[string][]time.Time
}

// New makes a world for the planned journeys (Driver, Plate and Plan set).
func New(cfg Config, journeys []sim.Journey) *World {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}
	}
	if cfg.Pulse <= 0 {
		cfg.Pulse = 300 * time.Millisecond
	}
	return &World{cfg: cfg, http: cfg.HTTP, ledger: NewLedger(journeys),
		lanes: map[string]*lane{}, rising: map[string][]time.Time{}}
}

// Ledger is the world's record.
func (w *World) Ledger() *Ledger { return w.ledger }

// Run plays every journey and returns when all are over or ctx ends.
func (w *World) Run(ctx context.Context) {
	pinCtx, stopPins := context.WithCancel(context.Background())
	var pinWG sync.WaitGroup
	pinWG.Add(1)
	go func() { defer pinWG.Done(); w.recordPins(pinCtx) }()

	var wg sync.WaitGroup
	n := len(w.ledger.journeys)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.drive(ctx, i)
		}()
	}
	wg.Wait()
	stopPins()
	pinWG.Wait()
	w.takePins(context.Background())
	w.finish()
}

// finish fills in what the world learns only at the end: when each payment
// reached the cloud, and which barrier edge answered each open.
func (w *World) finish() {
	if w.cfg.Webhooks != nil {
		for i := range w.ledger.journeys {
			w.ledger.Update(i, func(j *sim.Journey) {
				if j.SessionID != "" && j.Paid() {
					j.WebhookAt = w.cfg.Webhooks.PaidSeen(j.SessionID)
				}
			})
		}
	}
	w.pinsMu.Lock()
	edges := map[string][]time.Time{}
	for _, l := range w.cfg.Lots {
		for _, g := range append(append([]string(nil), l.Entry...), l.Exit...) {
			es := append([]time.Time(nil), w.rising[l.ID+"/"+g+".barrier"]...)
			sort.Slice(es, func(a, b int) bool { return es[a].Before(es[b]) })
			edges[l.ID+"/"+g] = es
		}
	}
	w.pinsMu.Unlock()
	w.ledger.mu.Lock()
	MatchBarriers(w.ledger.reads, edges)
	w.ledger.mu.Unlock()
}

// MatchBarriers sets BarrierAt of every open read to the barrier relay's
// rising edge that answered it. edges are the rising edges by "lot
// id/gate id", in time order. A lane holds one car at a time and the car
// waits out the pulse, so the answer to an open is the first rising edge
// at or after the read was sent, if it came before the answer did; an
// edge before any read (an override, a stray) answers nothing.
func MatchBarriers(reads []sim.Read, edges map[string][]time.Time) {
	byGate := map[string][]int{}
	for i, r := range reads {
		if r.Open() {
			k := r.LotID + "/" + r.GateID
			byGate[k] = append(byGate[k], i)
		}
	}
	for k, idx := range byGate {
		sort.Slice(idx, func(a, b int) bool { return reads[idx[a]].SentAt.Before(reads[idx[b]].SentAt) })
		es, used := edges[k], 0
		for _, i := range idx {
			r := &reads[i]
			for used < len(es) && es[used].Before(r.SentAt) {
				used++
			}
			if used < len(es) && !es[used].After(r.SentAt.Add(r.RTT+50*time.Millisecond)) {
				r.BarrierAt = es[used]
				used++
			}
		}
	}
}

// recordPins collects the agents' pin edges every second, so the agents
// need not keep a long run's edges.
func (w *World) recordPins(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.takePins(ctx)
		}
	}
}

func (w *World) takePins(ctx context.Context) {
	for _, l := range w.cfg.Lots {
		w.takeLotPins(ctx, l)
	}
}

// takeLotPins moves the rising edges a lot's agent recorded into the world.
func (w *World) takeLotPins(ctx context.Context, l Lot) {
	if l.Pins == nil {
		return
	}
	w.pinsMu.Lock()
	defer w.pinsMu.Unlock()
	rising, err := l.Pins.Rising(ctx)
	if err != nil {
		return // the agent is busy or restarting; the next round catches up
	}
	for pin, es := range rising {
		k := l.ID + "/" + pin
		w.rising[k] = append(w.rising[k], es...)
	}
}

// waitTrigger waits for the camera trigger the loop detector fires, as a
// triggered LPR camera does before it reads, and returns its time; zero
// when none came within a short while (a free-running camera reads anyway).
func (w *World) waitTrigger(ctx context.Context, l Lot, gate string, since time.Time) time.Time {
	k := l.ID + "/" + gate + ".camera"
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		w.takeLotPins(ctx, l)
		w.pinsMu.Lock()
		for _, t := range w.rising[k] {
			if !t.Before(since) {
				w.pinsMu.Unlock()
				return t
			}
		}
		w.pinsMu.Unlock()
		if !sleep(ctx, 5*time.Millisecond) {
			break
		}
	}
	return time.Time{}
}

// lane is one gate's queue: one car at a time, and a moment between cars
// for the last to clear the loop and the next to pull up.
type lane struct {
	sync.Mutex
	free time.Time // when the next car can be on the loop
}

// The next car is on the loop laneGap after the last one left it, and at
// least laneArrivals after the last one arrived: the agent's loop detector
// takes edges closer than its holdoff (500 ms) for bounce, as real
// detectors do. Real cars are slower than either; a simulation compresses
// hours into a minute.
const (
	laneGap      = 150 * time.Millisecond
	laneArrivals = 600 * time.Millisecond
)

func (w *World) lane(lotID, gateID string) *lane {
	w.lanesMu.Lock()
	defer w.lanesMu.Unlock()
	k := lotID + "/" + gateID
	m := w.lanes[k]
	if m == nil {
		m = &lane{}
		w.lanes[k] = m
	}
	return m
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func sleep(ctx context.Context, d time.Duration) bool { return sleepUntil(ctx, time.Now().Add(d)) }

func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "parksim-" + hex.EncodeToString(b)
}

// jitter is a random duration in [0, d).
func jitter(rng *mrand.Rand, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(d)))
}

// drive plays journey i from booking to exit.
func (w *World) drive(ctx context.Context, i int) {
	j := w.ledger.Journey(i)
	rng := mrand.New(mrand.NewPCG(w.cfg.Seed, uint64(i)+1))
	t0 := w.cfg.Start
	lot := w.cfg.Lots[j.Plan.Lot]
	startsAt := t0.Add(j.Plan.Start).Truncate(time.Second).Add(time.Second)
	endsAt := startsAt.Add(j.Plan.Stay)
	w.ledger.Update(i, func(j *sim.Journey) { j.StartsAt, j.EndsAt, j.LotID = startsAt, endsAt, lot.ID })

	if !sleepUntil(ctx, t0.Add(j.Plan.BookAt)) {
		return
	}
	if j.Plan.Arrival == sim.ArrivalIntruder {
		w.visit(ctx, i, rng, lot, startsAt, endsAt, false)
		return
	}
	lot, ok := w.book(ctx, i, rng, lot, startsAt, endsAt)
	if !ok {
		return
	}
	paid := w.pay(ctx, i, rng)
	if !paid || j.Plan.Arrival == sim.ArrivalNoShow {
		return
	}
	w.visit(ctx, i, rng, lot, startsAt, endsAt, j.Plan.Payment == sim.PayNow)
}

// book searches, picks a lot and holds a spot, retrying with the same
// Idempotency-Key when an answer does not come.
func (w *World) book(ctx context.Context, i int, rng *mrand.Rand, want Lot, startsAt, endsAt time.Time) (Lot, bool) {
	j := w.ledger.Journey(i)
	lot := want
	if hits, err := w.search(ctx, want.Lat, want.Lng, startsAt, endsAt); err == nil {
		free := 0
		wantFree := false
		for _, h := range hits {
			if h.Available > 0 {
				free++
				if h.ID == want.ID {
					wantFree = true
				}
			}
		}
		if !wantFree {
			// The lot the driver wanted looks full: take the nearest free
			// one, as an app would offer.
			for _, h := range hits {
				if h.Available > 0 {
					for _, l := range w.cfg.Lots {
						if l.ID == h.ID {
							lot = l
						}
					}
					break
				}
			}
		}
		w.ledger.Update(i, func(j *sim.Journey) { j.SearchFound = free; j.LotID = lot.ID })
	}

	key := newKey()
	body := map[string]string{"lot_id": lot.ID, "plate": Spell(rng, j.Plate),
		"starts_at": startsAt.UTC().Format(time.RFC3339), "ends_at": endsAt.UTC().Format(time.RFC3339)}
	w.ledger.Update(i, func(j *sim.Journey) { j.IdempotencyKey = key })
	// A phone app retries for a while, not forever: about ten seconds.
	const attempts = 12
	giveUp := time.Now().Add(10 * time.Second)
	for a := 0; a < attempts && time.Now().Before(giveUp); a++ {
		timeout, base := 10*time.Second, w.cfg.CloudURL
		if a == 0 {
			switch j.Plan.Network {
			case sim.NetworkLostAnswer:
				// Through the network that loses answers: the cloud does
				// the work, the phone hears nothing and tries again.
				if w.cfg.LossyCloudURL != "" {
					base = w.cfg.LossyCloudURL
				}
			case sim.NetworkImpatient:
				// The app gives up somewhere in the middle of the request.
				timeout = time.Duration(1+rng.IntN(30)) * time.Millisecond
			}
		}
		start := time.Now()
		status, code, after, replayed, ans, err := w.holdOnce(ctx, base, key, body, timeout)
		att := sim.HoldAttempt{At: start, Latency: time.Since(start), Status: status, Code: code, Replayed: replayed}
		if err != nil {
			att.Err = err.Error()
		}
		w.ledger.Update(i, func(j *sim.Journey) { j.Holds = append(j.Holds, att) })
		if ctx.Err() != nil {
			return lot, false
		}
		switch {
		case status == http.StatusCreated:
			w.ledger.Update(i, func(j *sim.Journey) {
				j.ReservationID, j.HoldExpiresAt, j.HoldCode = ans.ID, ans.HoldExpiresAt, ""
				if ans.Payment != nil {
					j.SessionID = ans.Payment.SessionID
				}
			})
			w.ledger.Held()
			return lot, true
		case status == http.StatusTooManyRequests:
			// Rate limited before anything was written: the same key again
			// after the wait, and only a few times (a surge is not a queue).
			if a >= 2 {
				w.ledger.Update(i, func(j *sim.Journey) { j.HoldCode = code })
				return lot, false
			}
			if !sleep(ctx, min(max(after, 200*time.Millisecond), 2*time.Second)+jitter(rng, 300*time.Millisecond)) {
				return lot, false
			}
		case status == http.StatusConflict && code == "idempotency_key_in_use":
			// The first attempt is still in flight at the cloud: back off.
			if !sleep(ctx, min(time.Duration(100<<a)*time.Millisecond, 2*time.Second)+jitter(rng, 200*time.Millisecond)) {
				return lot, false
			}
		case status == 0 || status >= 500:
			if !sleep(ctx, time.Duration(50<<a)*time.Millisecond+jitter(rng, 100*time.Millisecond)) {
				return lot, false
			}
		default: // 409 no_availability, 4xx: a real answer
			w.ledger.Update(i, func(j *sim.Journey) { j.HoldCode = fmt.Sprintf("%d %s", status, code) })
			return lot, false
		}
	}
	w.ledger.Update(i, func(j *sim.Journey) {
		j.HoldCode = "gave up"
		if n := len(j.Holds); n > 0 && j.Holds[n-1].Code != "" {
			j.HoldCode = "gave up after " + j.Holds[n-1].Code
		}
	})
	return lot, false
}

// pay plays the driver at the checkout page.
func (w *World) pay(ctx context.Context, i int, rng *mrand.Rand) bool {
	j := w.ledger.Journey(i)
	if j.SessionID == "" || w.cfg.Payments == nil {
		return false
	}
	switch j.Plan.Payment {
	case sim.PayNever:
		return false
	case sim.PayAfterExpiry:
		if !sleepUntil(ctx, j.HoldExpiresAt.Add(3*time.Second)) {
			return false
		}
	case sim.PayLate:
		// Paying in the last moments of the hold: Stripe takes the money,
		// but its event reaches the cloud only after the hold has ended.
		if w.cfg.Webhooks != nil {
			w.cfg.Webhooks.HoldUntil(j.SessionID, j.HoldExpiresAt.Add(1500*time.Millisecond))
		}
		if !sleepUntil(ctx, j.HoldExpiresAt.Add(-1500*time.Millisecond)) {
			return false
		}
	default:
		if !sleep(ctx, 100*time.Millisecond+jitter(rng, 400*time.Millisecond)) {
			return false
		}
	}
	pi, err := w.cfg.Payments.Pay(j.SessionID)
	if err != nil {
		w.ledger.Update(i, func(j *sim.Journey) { j.PayErr = err.Error() })
		return false
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.PaidAt, j.PaymentIntentID = time.Now(), pi })
	w.ledger.Paid()
	if j.Plan.Payment != sim.PayNow {
		return true
	}
	// The app waits for the confirmation, as a driver would before setting
	// off.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st, err := w.reservationStatus(ctx, j.ReservationID)
		if err == nil && (st == protocol.StatusConfirmed || st == protocol.StatusCheckedIn) {
			w.ledger.Update(i, func(j *sim.Journey) { j.ConfirmedAt = time.Now() })
			return true
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return false
		}
	}
	return true
}

// visit drives the car to the lot and, once in, out again.
func (w *World) visit(ctx context.Context, i int, rng *mrand.Rand, lot Lot, startsAt, endsAt time.Time, confirmed bool) {
	j := w.ledger.Journey(i)
	grace := w.cfg.EarlyGrace
	stay := endsAt.Sub(startsAt)
	var arrive time.Time
	switch j.Plan.Arrival {
	case sim.ArrivalEarly:
		arrive = startsAt.Add(-grace - 1500*time.Millisecond - jitter(rng, time.Second))
	case sim.ArrivalLate:
		arrive = endsAt.Add(500*time.Millisecond + jitter(rng, time.Second))
	default: // on time, overstay, intruder
		arrive = startsAt.Add(-grace/2 + jitter(rng, min(stay/4, 2*time.Second)))
	}
	if !sleepUntil(ctx, arrive) {
		return
	}
	persistent := confirmed // a driver whose app shows CONFIRMED insists at the intercom
	tries := 0
	for {
		opened, reason := w.pass(ctx, i, rng, lot, protocol.DirectionEntry)
		if opened {
			break
		}
		tries++
		var wait time.Duration
		switch reason {
		case protocol.ReasonTooEarly:
			// Told to come back: drive around the block until the gate will open.
			if time.Now().Before(startsAt.Add(-grace)) {
				wait = time.Until(startsAt.Add(-grace)) + 200*time.Millisecond + jitter(rng, 500*time.Millisecond)
			} else {
				wait = 300 * time.Millisecond
			}
		case protocol.ReasonNoReservation, "unreachable", "no read":
			// Perhaps the booking has not reached the gate yet (a cut
			// uplink): a confirmed driver tries again until the window ends.
			if !persistent || tries >= 60 {
				w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = reason })
				return
			}
			wait = 700*time.Millisecond + jitter(rng, 600*time.Millisecond)
		default: // expired, already inside, …: nothing to wait for
			w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = reason })
			return
		}
		if time.Now().Add(wait).After(endsAt) && reason != protocol.ReasonTooEarly {
			w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = reason + " until the window ended" })
			return
		}
		if !sleep(ctx, wait) {
			return
		}
	}
	entered := time.Now()
	w.ledger.Update(i, func(j *sim.Journey) { j.EnteredAt = entered })
	w.ledger.Move(lot.ID, +1, entered)

	var leave time.Time
	switch j.Plan.Arrival {
	case sim.ArrivalOverstay:
		leave = endsAt.Add(w.cfg.ExitGrace + 700*time.Millisecond + jitter(rng, time.Second))
	case sim.ArrivalIntruder:
		leave = entered.Add(time.Second) // let in by mistake: out again at once
	default:
		leave = startsAt.Add(stay/2 + jitter(rng, stay*3/10))
		if endsAt.Sub(entered) < time.Second {
			leave = entered.Add(300 * time.Millisecond)
		}
	}
	leave = maxTime(leave, entered.Add(w.cfg.Pulse+100*time.Millisecond))
	// An exit is never refused to a car inside, so a car leaving insists
	// (a low-confidence or missed read is read again) but there is no
	// window to wait for: a few rounds, then it counts as trapped.
	if !sleepUntil(ctx, leave) {
		ctx = context.WithoutCancel(ctx) // the run is over; cars still leave
	}
	for round := 0; round < 5; round++ {
		if opened, _ := w.pass(ctx, i, rng, lot, protocol.DirectionExit); opened {
			t := time.Now()
			w.ledger.Update(i, func(j *sim.Journey) { j.ExitedAt = t })
			w.ledger.Move(lot.ID, -1, t)
			return
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return
		}
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = "trapped at the exit" })
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pass puts the car in a lane of the lot in direction dir and lets the
// camera read it until the gate opens or gives a reason to leave the lane.
func (w *World) pass(ctx context.Context, i int, rng *mrand.Rand, lot Lot, dir string) (bool, string) {
	j := w.ledger.Journey(i)
	gates := lot.Entry
	if dir == protocol.DirectionExit {
		gates = lot.Exit
	}
	if len(gates) == 0 {
		return false, "no gate"
	}
	gate := gates[rng.IntN(len(gates))]
	ln := w.lane(lot.ID, gate)
	ln.Lock()
	if !sleepUntil(ctx, ln.free) {
		ln.Unlock()
		return false, "cancelled"
	}
	arrived := time.Now()
	defer func() {
		ln.free = maxTime(time.Now().Add(laneGap), arrived.Add(laneArrivals))
		ln.Unlock()
	}()
	// The car rolls onto the induction loop: the agent pulses the camera
	// trigger and the camera reads the plate.
	var loopAt, triggerAt time.Time
	if lot.Pins != nil {
		loopAt = time.Now()
		if err := lot.Pins.Set(ctx, gate+".loop", true); err == nil {
			defer func() { _ = lot.Pins.Set(context.WithoutCancel(ctx), gate+".loop", false) }()
			triggerAt = w.waitTrigger(ctx, lot, gate, loopAt)
		}
	}
	reason := "no read"
	for shot := 0; shot < 6; shot++ {
		s := w.cfg.Noise.Read(rng, j.Plate)
		rd := sim.Read{Driver: i, LotID: lot.ID, GateID: gate, Direction: dir, Plate: j.Plate,
			Sent: s.Plate, Noise: s.Noise, Confidence: s.Confidence, SentAt: time.Now()}
		if shot == 0 {
			rd.LoopAt, rd.TriggerAt = loopAt, triggerAt
		}
		if lot.Uplink != nil {
			rd.Offline = lot.Uplink.IsCut()
		}
		if s.Missed {
			// Nothing reached the agent; the camera re-triggers.
			rd.Err = "camera missed"
			w.ledger.AddRead(rd)
			if !sleep(ctx, 150*time.Millisecond) {
				return false, "cancelled"
			}
			continue
		}
		ans, err := w.postRead(ctx, lot.EdgeURL, gate, s.Plate, s.Confidence, rd.SentAt)
		rd.RTT = time.Since(rd.SentAt)
		if err != nil {
			rd.Err = err.Error()
			w.ledger.AddRead(rd)
			reason = "unreachable"
			if !sleep(ctx, 300*time.Millisecond) {
				return false, "cancelled"
			}
			continue
		}
		rd.Decision, rd.Reason, rd.ReservationID, rd.EventID, rd.DecidedInUs =
			ans.Decision, ans.Reason, ans.ReservationID, ans.EventID, ans.DecidedInUs
		w.ledger.AddRead(rd)
		if ans.Decision == protocol.DecisionOpen {
			// Through the barrier before the next car rolls up.
			sleep(context.WithoutCancel(ctx), w.cfg.Pulse+50*time.Millisecond)
			return true, ans.Reason
		}
		reason = ans.Reason
		switch ans.Reason {
		case protocol.ReasonLowConfidence, protocol.ReasonAmbiguous:
			// The camera reads again while the car is still on the loop.
			if !sleep(ctx, 100*time.Millisecond+jitter(rng, 100*time.Millisecond)) {
				return false, "cancelled"
			}
			continue
		}
		return false, reason
	}
	return false, reason
}
