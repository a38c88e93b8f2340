package traffic

import (
	"context"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

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
		var opened bool
		var reason string
		if j.Plan.Life == sim.LifeAccessCode && j.AccessCode != "" && len(lot.Entry) > 0 {
			opened, reason = w.showCode(ctx, i, rng, lot)
		} else {
			opened, reason = w.pass(ctx, i, rng, lot, protocol.DirectionEntry)
		}
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

	extendedTo := time.Time{}
	if j.Plan.Life == sim.LifeExtend {
		if to := w.extend(ctx, i, rng, startsAt, endsAt); to.After(endsAt) {
			extendedTo = to
		}
	}
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
	if !extendedTo.IsZero() {
		// Past the booking's first end, into the bought time, out before
		// the new end.
		leave = extendedTo.Add(-1200*time.Millisecond - jitter(rng, 600*time.Millisecond))
	}
	leave = maxTime(leave, entered.Add(w.cfg.Pulse+100*time.Millisecond))
	// An exit is never refused to a car inside, so a car leaving insists
	// (a low-confidence or missed read is read again) but there is no
	// window to wait for: a few rounds, then it counts as trapped.
	if !sleepUntil(ctx, leave) {
		ctx = context.WithoutCancel(ctx) // the run is over; cars still leave
	}
	if w.leave(ctx, i, rng, lot) && j.Plan.Life == sim.LifeOverstayPay {
		w.payOverstay(ctx, i)
	}
}

// leave drives a car inside to an exit until it opens; false when it
// stayed trapped.
func (w *World) leave(ctx context.Context, i int, rng *mrand.Rand, lot Lot) bool {
	for round := 0; round < 5; round++ {
		if opened, _ := w.pass(ctx, i, rng, lot, protocol.DirectionExit); opened {
			t := time.Now()
			w.ledger.Update(i, func(j *sim.Journey) { j.ExitedAt = t })
			w.ledger.Move(lot.ID, -1, t)
			return true
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return false
		}
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = "trapped at the exit" })
	return false
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
