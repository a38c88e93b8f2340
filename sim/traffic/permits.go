package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// Permit holders (issue 15): the operator makes a permit for the car's
// plate, with the admin token, and the car comes without a booking. One
// whose permit is revoked first must be refused once the edge has the
// revocation; one whose exit read is missed needs the operator's presence
// reset to get in again.

// permitValidity is how long a simulated permit lasts from its creation:
// longer than any run, so every visit is inside it.
const permitValidity = 6 * time.Hour

// permitHolder plays journey i: its permit made at BookAt, its visit from
// Start for Stay.
func (w *World) permitHolder(ctx context.Context, i int, rng *mrand.Rand, lot Lot) {
	j := w.ledger.Journey(i)
	now := time.Now()
	st, _, raw, err := w.call(ctx, http.MethodPost, "/v1/lots/"+lot.ID+"/permits", w.cfg.AdminToken, "", map[string]string{
		"plate": Spell(rng, j.Plate), "valid_from": now.Add(-time.Minute).UTC().Format(time.RFC3339),
		"valid_until": now.Add(permitValidity).UTC().Format(time.RFC3339), "label": fmt.Sprintf("parksim driver %d", i),
	})
	pl := &sim.PermitLife{Status: st}
	var p struct {
		ID string `json:"id"`
	}
	if err == nil && st == http.StatusCreated && json.Unmarshal(raw, &p) == nil {
		pl.ID = p.ID
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.Permit = pl })
	if pl.ID == "" {
		w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = fmt.Sprintf("no permit (%d)", st) })
		return
	}
	if j.Plan.Arrival == sim.ArrivalRevoked {
		w.revokedHolder(ctx, i, rng, lot, pl.ID)
		return
	}
	if !sleepUntil(ctx, w.cfg.Start.Add(j.Plan.Start)) {
		return
	}
	if !w.enterOnPermit(ctx, i, rng, lot) {
		return
	}
	stay := j.Plan.Stay
	if j.Plan.Life == sim.LifeReset {
		w.missedExit(ctx, i, rng, lot, stay)
		return
	}
	if !sleep(ctx, stay) {
		ctx = context.WithoutCancel(ctx) // the run is over; cars still leave
	}
	w.leave(ctx, i, rng, lot)
}

// enterOnPermit drives to the entry until it opens; a permit plate inside
// its validity is refused only while the lot thinks it is inside, which a
// car that is outside does not wait out.
func (w *World) enterOnPermit(ctx context.Context, i int, rng *mrand.Rand, lot Lot) bool {
	for tries := 0; tries < 20; tries++ {
		opened, reason := w.pass(ctx, i, rng, lot, protocol.DirectionEntry)
		if opened {
			t := time.Now()
			w.ledger.Update(i, func(j *sim.Journey) { j.EnteredAt = t })
			w.ledger.Move(lot.ID, +1, t)
			return true
		}
		switch reason {
		case "unreachable", "no read":
			if !sleep(ctx, 700*time.Millisecond+jitter(rng, 600*time.Millisecond)) {
				return false
			}
		case protocol.ReasonNoReservation:
			// The permit may not have reached a cut-off edge yet.
			if lot.Uplink == nil || !lot.Uplink.IsCut() {
				if tries >= 5 {
					w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = reason })
					return false
				}
			}
			if !sleep(ctx, time.Second+jitter(rng, time.Second)) {
				return false
			}
		default:
			w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = reason })
			return false
		}
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.GaveUp = "never let in" })
	return false
}

// revokedHolder: the operator revokes the permit; once the edge has had
// the time to sync, and only while it is connected (offline it may rightly
// open until it syncs), the car tries the entry.
func (w *World) revokedHolder(ctx context.Context, i int, rng *mrand.Rand, lot Lot, id string) {
	j := w.ledger.Journey(i)
	// Let the permit reach the edge first, so the revocation is what
	// refuses the car, not a permit never synced.
	if !sleep(ctx, syncWait) {
		return
	}
	at := time.Now()
	st, _, _, _ := w.call(ctx, http.MethodDelete, "/v1/lots/"+lot.ID+"/permits/"+id, w.cfg.AdminToken, "", nil)
	w.ledger.Update(i, func(j *sim.Journey) { j.Permit.RevokedAt, j.Permit.Revoke = at, st })
	if st != http.StatusNoContent {
		return
	}
	if !sleepUntil(ctx, maxTime(at.Add(syncWait), w.cfg.Start.Add(j.Plan.Start))) {
		return
	}
	if lot.Uplink != nil && lot.Uplink.IsCut() {
		return
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.Permit.Tried = true })
	if opened, _ := w.pass(ctx, i, rng, lot, protocol.DirectionEntry); opened {
		// Let in by mistake: out again, so no car is left inside.
		t := time.Now()
		w.ledger.Update(i, func(j *sim.Journey) { j.EnteredAt = t })
		w.ledger.Move(lot.ID, +1, t)
		w.leave(ctx, i, rng, lot)
	}
}

// missedExit: the car leaves without the exit camera reading it, so the
// edge still has it inside; back at the entry it is refused
// already_inside, the operator resets its presence from the cloud, and
// once the edge has applied the reset the car is let in, then leaves as
// usual.
func (w *World) missedExit(ctx context.Context, i int, rng *mrand.Rand, lot Lot, stay time.Duration) {
	if !sleep(ctx, stay/2) {
		return
	}
	out := time.Now()
	w.ledger.Update(i, func(j *sim.Journey) { j.ExitedAt = out })
	w.ledger.Move(lot.ID, -1, out)
	if !sleep(ctx, stay/2) {
		return
	}
	rs := &sim.Reset{}
	if opened, reason := w.pass(ctx, i, rng, lot, protocol.DirectionEntry); opened {
		rs.DeniedBefore = "open"
		t := time.Now()
		w.ledger.Update(i, func(j *sim.Journey) { j.Permit.Reset, j.EnteredAt, j.ExitedAt = rs, t, time.Time{} })
		w.ledger.Move(lot.ID, +1, t)
		w.leave(ctx, i, rng, lot)
		return
	} else {
		rs.DeniedBefore = reason
	}
	j := w.ledger.Journey(i)
	rs.At = time.Now()
	rs.Offline = lot.Uplink != nil && lot.Uplink.IsCut()
	st, _, raw, err := w.call(ctx, http.MethodPost, "/v1/lots/"+lot.ID+"/presence/"+url.PathEscape(Spell(rng, j.Plate))+"/reset",
		w.cfg.AdminToken, "", nil)
	rs.Status = st
	var ans struct {
		Seq int64 `json:"seq"`
	}
	if err == nil && st == http.StatusAccepted && json.Unmarshal(raw, &ans) == nil {
		rs.Seq = ans.Seq
	}
	w.ledger.Update(i, func(j *sim.Journey) { j.Permit.Reset = rs })
	if rs.Seq == 0 {
		return
	}
	// The edge applies the reset when it syncs: at once when connected,
	// after the uplink is back when not.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if seq, err := w.edgeSeq(ctx, lot); err == nil && seq >= rs.Seq {
			break
		}
		if time.Now().After(deadline) || !sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
	synced := time.Now()
	w.ledger.Update(i, func(j *sim.Journey) { j.Permit.Reset.Synced = synced })
	opened, reason := w.pass(ctx, i, rng, lot, protocol.DirectionEntry)
	w.ledger.Update(i, func(j *sim.Journey) { j.Permit.Reset.After = reason })
	if !opened {
		return
	}
	t := time.Now()
	w.ledger.Update(i, func(j *sim.Journey) { j.EnteredAt, j.ExitedAt = t, time.Time{} })
	w.ledger.Move(lot.ID, +1, t)
	if !sleep(ctx, time.Second) {
		ctx = context.WithoutCancel(ctx)
	}
	w.leave(ctx, i, rng, lot)
}

// edgeSeq is the lot's edge's applied sequence number, from its gates.
func (w *World) edgeSeq(ctx context.Context, lot Lot) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lot.EdgeURL+"/v1/gates", nil)
	if err != nil {
		return 0, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Gates []struct {
			SyncSeq int64 `json:"sync_seq"`
		} `json:"gates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if len(body.Gates) == 0 {
		return 0, fmt.Errorf("edge of %s has no gates", lot.Name)
	}
	return body.Gates[0].SyncSeq, nil
}
