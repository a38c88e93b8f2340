package traffic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/sim"
)

// newKey is a fresh Idempotency-Key, one per booking as an app makes it.
func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "parksim-" + hex.EncodeToString(b)
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
	if j.Plan.Arrival == sim.ArrivalPermit || j.Plan.Arrival == sim.ArrivalRevoked {
		w.permitHolder(ctx, i, rng, lot)
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
	switch j.Plan.Life {
	case sim.LifeCancelIn, sim.LifeCancelOut:
		w.cancel(ctx, i, rng, lot, startsAt)
		return
	case sim.LifeAccessCode:
		w.fetchCode(ctx, i)
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
				j.ReservationID, j.HoldExpiresAt, j.HoldCode, j.AccessToken = ans.ID, ans.HoldExpiresAt, "", ans.AccessToken
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
		if err == nil && st.OpensGate() {
			w.ledger.Update(i, func(j *sim.Journey) { j.ConfirmedAt = time.Now() })
			return true
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return false
		}
	}
	return true
}
