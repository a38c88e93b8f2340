package traffic

import (
	"context"
	"encoding/json"
	mrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// fetchCode has the app show the reservation's access code, as a driver
// opens it before setting off.
func (w *World) fetchCode(ctx context.Context, i int) {
	j := w.ledger.Journey(i)
	if j.ReservationID == "" || j.AccessToken == "" {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v, err := w.reservation(ctx, j.ReservationID, j.AccessToken)
		if err == nil && v.AccessCode != "" {
			w.ledger.Update(i, func(j *sim.Journey) { j.AccessCode = v.AccessCode })
			return
		}
		if !sleep(ctx, 150*time.Millisecond) {
			return
		}
	}
}

// syncWait is how long a driver who cancelled waits before trying the
// cancelled booking's code: the cancellation reaches a connected edge in
// well under it, which the code check verifies from the edge's own
// applied sequence numbers rather than trusting this wait.
const syncWait = 3 * time.Second

// cancel plays a driver who changes their mind: within the lot's free
// cancellation (LifeCancelIn) or after it (LifeCancelOut, which expects
// 409 not_cancellable and does not come). A driver refunded in policy
// comes to the gate anyway and shows the cancelled booking's code, which
// must not open once the cancellation reached the edge.
func (w *World) cancel(ctx context.Context, i int, rng *mrand.Rand, lot Lot, startsAt time.Time) {
	j := w.ledger.Journey(i)
	if j.ReservationID == "" || j.AccessToken == "" {
		return
	}
	deadline := startsAt.Add(-lot.FreeCancellation)
	if j.Plan.Life == sim.LifeCancelIn {
		w.fetchCode(ctx, i)
		if !sleep(ctx, 200*time.Millisecond+jitter(rng, 500*time.Millisecond)) {
			return
		}
	} else if !sleepUntil(ctx, deadline.Add(500*time.Millisecond)) {
		return
	}
	c := sim.Cancel{At: time.Now()}
	c.InPolicy = c.At.Before(deadline)
	st, code, raw, err := w.call(ctx, http.MethodPost, "/v1/reservations/"+j.ReservationID+"/cancel", j.AccessToken, "", nil)
	c.RTT, c.Status, c.Code = time.Since(c.At), st, code
	if err == nil && st == http.StatusOK {
		var v resView
		if json.Unmarshal(raw, &v) == nil && v.Refund != nil {
			c.Refund = v.Refund.Amount
		}
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.Cancel = &c })
	j = w.ledger.Journey(i)
	if st != http.StatusOK || j.AccessCode == "" || len(lot.Entry) == 0 {
		return
	}
	// At the gate with the code of a booking that is no more.
	if !sleepUntil(ctx, maxTime(c.At.Add(c.RTT+syncWait), startsAt.Add(-w.cfg.EarlyGrace/2))) {
		return
	}
	if lot.Uplink != nil && lot.Uplink.IsCut() {
		// A cut-off edge learns of the cancellation only at the next
		// sync, and may rightly open until then: nothing to show here.
		return
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.Cancel.CodeTried = true })
	if opened, _ := w.showCode(ctx, i, rng, lot); opened {
		// Let in by mistake: out again, so no car is left inside.
		t := time.Now()
		w.ledger.Update(i, func(j *sim.Journey) { j.EnteredAt = t })
		w.ledger.Move(lot.ID, +1, t)
		w.leave(ctx, i, rng, lot)
	}
}

// showCode is a car at an entry lane whose camera misses its plate: the
// driver holds the access code up to the lane's reader instead.
func (w *World) showCode(ctx context.Context, i int, rng *mrand.Rand, lot Lot) (bool, string) {
	j := w.ledger.Journey(i)
	gate := lot.Entry[rng.IntN(len(lot.Entry))]
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
	var loopAt, triggerAt time.Time
	if lot.Pins != nil {
		loopAt = time.Now()
		if err := lot.Pins.Set(ctx, gate+".loop", true); err == nil {
			defer func() { _ = lot.Pins.Set(context.WithoutCancel(ctx), gate+".loop", false) }()
			triggerAt = w.waitTrigger(ctx, lot, gate, loopAt)
		}
	}
	miss := sim.Read{Driver: i, LotID: lot.ID, GateID: gate, Direction: protocol.DirectionEntry, Plate: j.Plate,
		Noise: "missed", SentAt: time.Now(), LoopAt: loopAt, TriggerAt: triggerAt, Err: "camera missed"}
	if lot.Uplink != nil {
		miss.Offline = lot.Uplink.IsCut()
	}
	w.ledger.AddRead(miss)
	rd := sim.Read{Driver: i, LotID: lot.ID, GateID: gate, Direction: protocol.DirectionEntry, Plate: j.Plate,
		Sent: "access code", Code: true, Confidence: 1, SentAt: time.Now(), Offline: miss.Offline}
	ans, err := w.postCode(ctx, lot.EdgeURL, gate, j.AccessCode)
	rd.RTT = time.Since(rd.SentAt)
	if err != nil {
		rd.Err = err.Error()
		w.ledger.AddRead(rd)
		return false, "unreachable"
	}
	rd.Decision, rd.Reason, rd.ReservationID, rd.EventID, rd.DecidedInUs =
		ans.Decision, ans.Reason, ans.ReservationID, ans.EventID, ans.DecidedInUs
	w.ledger.AddRead(rd)
	if ans.Decision == protocol.DecisionOpen {
		sleep(context.WithoutCancel(ctx), w.cfg.Pulse+50*time.Millisecond)
		return true, ans.Reason
	}
	return false, ans.Reason
}

// extend has a driver inside ask for more time: a new interval on the
// same spot, paid at the stand-in like a hold; it returns the window's end
// as the app then shows it (endsAt when the extension did not happen).
func (w *World) extend(ctx context.Context, i int, rng *mrand.Rand, startsAt, endsAt time.Time) time.Time {
	j := w.ledger.Journey(i)
	if j.ReservationID == "" || j.AccessToken == "" || w.cfg.Payments == nil {
		return endsAt
	}
	stay := endsAt.Sub(startsAt)
	want := endsAt.Add(max(stay/2, 3*time.Second)).Truncate(time.Second)
	e := sim.Extension{At: time.Now(), EndsAt: want}
	body := map[string]string{"ends_at": want.UTC().Format(time.RFC3339)}
	key := newKey()
	var st int
	var code string
	var raw []byte
	var err error
	// Retried with the same key when no answer comes, as a hold is.
	for a := 0; a < 4; a++ {
		st, code, raw, err = w.call(ctx, http.MethodPost, "/v1/reservations/"+j.ReservationID+"/extensions", j.AccessToken, key, body)
		if err == nil && st != 0 && st < 500 && !(st == http.StatusConflict && code == "idempotency_key_in_use") {
			break
		}
		if !sleep(ctx, time.Duration(100<<a)*time.Millisecond+jitter(rng, 100*time.Millisecond)) {
			return endsAt
		}
	}
	e.Status, e.Code = st, code
	if st == http.StatusCreated {
		var a extensionAnswer
		if json.Unmarshal(raw, &a) == nil {
			e.ID = a.ID
			if a.Payment != nil {
				e.SessionID = a.Payment.SessionID
			}
		}
	}
	save := func() { c := e; w.ledger.Update(i, func(j *sim.Journey) { j.Extension = &c }) }
	save()
	if e.SessionID == "" {
		return endsAt
	}
	if !sleep(ctx, 100*time.Millisecond+jitter(rng, 300*time.Millisecond)) {
		return endsAt
	}
	if _, err := w.cfg.Payments.Pay(e.SessionID); err != nil {
		return endsAt
	}
	e.PaidAt = time.Now()
	save()
	// The app follows the booking until its window moved.
	for time.Now().Before(endsAt) {
		v, err := w.reservation(ctx, j.ReservationID, j.AccessToken)
		if err == nil && v.EndsAt.Equal(want) {
			e.Applied = time.Now()
			save()
			return want
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return endsAt
		}
	}
	return endsAt
}

// payOverstay has a driver who left late pay what the cloud asks: the
// overstay's own session, once it appears on the reservation.
func (w *World) payOverstay(ctx context.Context, i int) {
	j := w.ledger.Journey(i)
	if j.ReservationID == "" || j.AccessToken == "" || w.cfg.Payments == nil {
		return
	}
	ctx = context.WithoutCancel(ctx) // a bill is paid after the run's traffic too
	// An exit made offline reaches the cloud when the uplink is back.
	deadline := time.Now().Add(30 * time.Second)
	paid := false
	for time.Now().Before(deadline) {
		v, err := w.reservation(ctx, j.ReservationID, j.AccessToken)
		if err == nil && v.Overstay != nil {
			st := v.Overstay.Status
			w.ledger.Update(i, func(j *sim.Journey) { j.OverstayStatus = st })
			if st == "paid" {
				return
			}
			if !paid && v.Overstay.Payment != nil && v.Overstay.Payment.SessionID != "" {
				sid := v.Overstay.Payment.SessionID
				if _, err := w.cfg.Payments.Pay(sid); err == nil {
					paid = true
					t := time.Now()
					w.ledger.Update(i, func(j *sim.Journey) { j.OverstaySession, j.OverstayPaidAt = sid, t })
				}
			}
		}
		sleep(ctx, 200*time.Millisecond)
	}
}
