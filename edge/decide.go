package edge

import (
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// ReasonStaleRead denies a read whose captured_at is too old or too far
// ahead of the edge's clock: a camera message replayed, or held back in a
// queue, must not open a gate for whoever stands there now. (It sits here
// rather than among protocol's reasons only to keep this change apart from
// others to that file; the cloud counts it like any other reason.)
const ReasonStaleRead = "stale_read"

// Read-age bounds. DefaultMaxReadAge is PARKGATE_MAX_READ_AGE's default;
// MaxReadAhead is fixed, as it only absorbs clock skew between camera and edge.
const (
	DefaultMaxReadAge = 10 * time.Second
	MaxReadAhead      = 10 * time.Second
)

// Decide is the gate's whole judgement: a pure function of the read, what the
// store knows (v), the clock and the policy. It never fails: whatever it
// cannot vouch for it denies with a reason, and a person at the intercom takes
// over.
//
// Matching a read to a plate: an exact match of the normalised read always
// wins. Otherwise the read is matched to the candidates the store found
// through look-alike characters (O/0/D/Q, I/1, B/8, S/5, Z/2) or a missing
// last character. Exactly one candidate plate is used, with Fuzzy set; two or
// more are ambiguous and the entry is denied (ambiguous_plate) whatever their
// windows say, because opening for the wrong one of two paying drivers is
// worse than a call to the intercom. At an exit the candidates are first
// narrowed to the plates inside: only a car that is inside can stand at the
// exit, so one inside candidate opens even if other plates fold alike.
//
// A read captured more than MaxReadAge before now, or more than MaxReadAhead
// after it, is denied (stale_read) before anything else, at entry and exit
// alike: the read no longer says who is at the gate. A read with no
// captured_at is taken as captured now: many cameras push without a
// timestamp, and the camera token is what keeps strangers from sending
// reads at all.
//
// Entry opens when now is in [starts_at - EarlyGrace, ends_at): exactly at
// starts_at - EarlyGrace opens, at ends_at it is expired. A plate with no
// reservation that opens, but with a permit valid now — [valid_from,
// valid_until), no early grace: the operator typed the period — opens with
// reason permit and no reservation id; a reservation that opens is preferred,
// so the cloud learns of the check-in. A plate whose only permits are all
// ahead is too_early, all over expired. A plate inside is refused
// (already_inside) until it leaves or an operator resets it, permit or not.
// A read below MinConfidence is refused before any lookup.
//
// Exit never traps a car that the lot has reason to believe is allowed out:
//   - a plate inside opens (inside), whatever the confidence, and the minutes
//     past ends_at are recorded as an overstay once ExitGrace has passed;
//   - a plate not known inside (the entry was missed, or presence was reset)
//     that holds a reservation covering now, [starts_at - EarlyGrace,
//     ends_at + ExitGrace), opens (valid);
//   - a plate whose reservation the cloud reports CHECKED_IN opens (inside)
//     with its overstay: the cloud saw it enter even if this store did not;
//   - a plate not known inside with a permit valid now, or until ExitGrace
//     ago, opens (permit);
//   - anything else is denied: low_confidence for an unsure read, not_inside
//     for a known plate, no_reservation for a plate the lot has never heard of.
func Decide(r PlateRead, v View, now time.Time, p Policy) Decision {
	if stale(r.CapturedAt, now, p) {
		return deny(ReasonStaleRead, r.Plate, "", false)
	}
	if r.Direction == protocol.DirectionExit {
		return decideExit(r, v, now, p)
	}
	return decideEntry(r, v, now, p)
}

func decideEntry(r PlateRead, v View, now time.Time, p Policy) Decision {
	if r.Confidence < p.MinConfidence {
		return deny(protocol.ReasonLowConfidence, r.Plate, "", false)
	}
	ps, fuzzy, ok := resolve(v, v.Candidates)
	switch {
	case !ok:
		return deny(protocol.ReasonAmbiguous, r.Plate, "", true)
	case !ps.Known():
		return deny(protocol.ReasonNoReservation, r.Plate, "", false)
	case ps.Presence != nil:
		return deny(protocol.ReasonAlreadyInside, ps.Plate, ps.Presence.ReservationID, fuzzy)
	}
	var future, past *Reservation
	for i := range ps.Reservations {
		res := &ps.Reservations[i]
		opensAt := res.StartsAt.Add(-p.EarlyGrace)
		switch {
		case now.Before(opensAt):
			if future == nil || res.StartsAt.Before(future.StartsAt) {
				future = res
			}
		case now.Before(res.EndsAt):
			return Decision{
				Decision:      protocol.DecisionOpen,
				Reason:        protocol.ReasonValid,
				Plate:         ps.Plate,
				ReservationID: res.ID,
				Fuzzy:         fuzzy,
				Presence:      PresenceEnter,
				Entered: &Presence{
					Plate:         ps.Plate,
					ReservationID: res.ID,
					GateID:        r.GateID,
					EnteredAt:     now,
					EndsAt:        res.EndsAt,
				},
			}
		default:
			if past == nil || res.EndsAt.After(past.EndsAt) {
				past = res
			}
		}
	}
	if pm := validPermit(ps.Permits, now, 0); pm != nil {
		return Decision{
			Decision: protocol.DecisionOpen,
			Reason:   protocol.ReasonPermit,
			Plate:    ps.Plate,
			Fuzzy:    fuzzy,
			Presence: PresenceEnter,
			Entered: &Presence{
				Plate:     ps.Plate,
				PermitID:  pm.ID,
				GateID:    r.GateID,
				EnteredAt: now,
			},
		}
	}
	switch {
	case future != nil:
		// A driver early for the next booking is told so, even if an older
		// one has ended: it is the one that will open.
		return deny(protocol.ReasonTooEarly, ps.Plate, future.ID, fuzzy)
	case past != nil:
		return deny(protocol.ReasonExpired, ps.Plate, past.ID, fuzzy)
	}
	for _, pm := range ps.Permits {
		if now.Before(pm.ValidFrom) {
			return deny(protocol.ReasonTooEarly, ps.Plate, "", fuzzy)
		}
	}
	if len(ps.Permits) > 0 {
		return deny(protocol.ReasonExpired, ps.Plate, "", fuzzy)
	}
	return deny(protocol.ReasonNoReservation, ps.Plate, "", fuzzy)
}

// validPermit returns a permit valid at now, its end stretched by grace,
// or nil.
func validPermit(ps []Permit, now time.Time, grace time.Duration) *Permit {
	for i := range ps {
		if !now.Before(ps[i].ValidFrom) && now.Before(ps[i].ValidUntil.Add(grace)) {
			return &ps[i]
		}
	}
	return nil
}

func decideExit(r PlateRead, v View, now time.Time, p Policy) Decision {
	inside := make([]PlateState, 0, 1)
	for _, c := range v.Candidates {
		if c.Presence != nil {
			inside = append(inside, c)
		}
	}
	candidates := v.Candidates
	if len(inside) > 0 {
		candidates = inside
	}
	ps, fuzzy, ok := resolve(v, candidates)
	lowConf := r.Confidence < p.MinConfidence
	switch {
	case !ok:
		return deny(protocol.ReasonAmbiguous, r.Plate, "", true)
	case !ps.Known() && lowConf:
		return deny(protocol.ReasonLowConfidence, r.Plate, "", false)
	case !ps.Known():
		return deny(protocol.ReasonNoReservation, r.Plate, "", false)
	case ps.Presence != nil:
		return leave(protocol.ReasonInside, ps.Plate, ps.Presence.ReservationID, fuzzy,
			overstay(now, stayEnds(ps), p))
	}
	var checkedIn, nearest *Reservation
	for i := range ps.Reservations {
		res := &ps.Reservations[i]
		if !now.Before(res.StartsAt.Add(-p.EarlyGrace)) && now.Before(res.EndsAt.Add(p.ExitGrace)) {
			return leave(protocol.ReasonValid, ps.Plate, res.ID, fuzzy, 0)
		}
		if res.Status == protocol.StatusCheckedIn && (checkedIn == nil || res.EndsAt.After(checkedIn.EndsAt)) {
			checkedIn = res
		}
		if nearest == nil || absDur(now.Sub(res.StartsAt)) < absDur(now.Sub(nearest.StartsAt)) {
			nearest = res
		}
	}
	switch {
	case checkedIn != nil:
		return leave(protocol.ReasonInside, ps.Plate, checkedIn.ID, fuzzy, overstay(now, checkedIn.EndsAt, p))
	case validPermit(ps.Permits, now, p.ExitGrace) != nil:
		return leave(protocol.ReasonPermit, ps.Plate, "", fuzzy, 0)
	case lowConf:
		return deny(protocol.ReasonLowConfidence, r.Plate, "", false)
	case nearest != nil:
		return deny(protocol.ReasonNotInside, ps.Plate, nearest.ID, fuzzy)
	}
	return deny(protocol.ReasonNotInside, ps.Plate, "", fuzzy)
}

// stayEnds is when the stay of a plate inside ends: its reservation's
// ends_at as the store has it now (an extension paid after entry moved it),
// else as it was at entry.
func stayEnds(ps PlateState) time.Time {
	end := ps.Presence.EndsAt
	for _, r := range ps.Reservations {
		if r.ID == ps.Presence.ReservationID && r.EndsAt.After(end) {
			end = r.EndsAt
		}
	}
	return end
}

// stale reports whether a read captured at capturedAt is outside
// [now - MaxReadAge, now + MaxReadAhead]. Both bounds are inclusive: a read
// exactly MaxReadAge old is still fresh.
func stale(capturedAt, now time.Time, p Policy) bool {
	if capturedAt.IsZero() {
		return false
	}
	maxAge := p.MaxReadAge
	if maxAge <= 0 {
		maxAge = DefaultMaxReadAge
	}
	return now.Sub(capturedAt) > maxAge || capturedAt.Sub(now) > MaxReadAhead
}

// resolve picks the plate a read means: the exact plate when the store knows
// it, else the single candidate, else nothing. ok is false when candidates
// are ambiguous.
func resolve(v View, candidates []PlateState) (ps PlateState, fuzzy, ok bool) {
	switch {
	case v.Exact.Known():
		return v.Exact, false, true
	case len(candidates) == 1:
		return candidates[0], true, true
	case len(candidates) > 1:
		return PlateState{}, true, false
	}
	return v.Exact, false, true
}

// overstay is the whole minutes (rounded up) past endsAt, counted only once
// the exit grace is used up: within the grace a stay is not an overstay.
func overstay(now, endsAt time.Time, p Policy) int {
	if endsAt.IsZero() || !now.After(endsAt.Add(p.ExitGrace)) {
		return 0
	}
	over := now.Sub(endsAt)
	return int((over + time.Minute - 1) / time.Minute)
}

func deny(reason, plate, reservationID string, fuzzy bool) Decision {
	return Decision{Decision: protocol.DecisionDeny, Reason: reason, Plate: plate, ReservationID: reservationID, Fuzzy: fuzzy}
}

func leave(reason, plate, reservationID string, fuzzy bool, overstayMin int) Decision {
	return Decision{
		Decision:        protocol.DecisionOpen,
		Reason:          reason,
		Plate:           plate,
		ReservationID:   reservationID,
		Fuzzy:           fuzzy,
		OverstayMinutes: overstayMin,
		Presence:        PresenceLeave,
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// ReasonInvalidCode denies an access code that is malformed, signed by no
// key this edge trusts, or another lot's.
const ReasonInvalidCode = "invalid_code"

// CodeRead is an access code shown at a gate: Code is nil when it did not
// verify (protocol.ParseAccessCode refused it).
type CodeRead struct {
	GateID    string
	Direction string
	Code      *protocol.AccessCode
}

// DecideCode is Decide for an access code, a pure function in the same
// shape: v is what the store knows of the code's plate, lotID this edge's
// lot. A verified code stands for a read of its plate with full confidence,
// but only for its own reservation: the plate's other bookings do not open
// for it, and the store must still hold that reservation as one that opens
// the gate. So a booking cancelled (or moved) in the cloud stops opening as
// soon as this edge has synced the change, however valid its code's
// signature stays; until then a code is worth what a plate read is, offline
// too. A code whose reservation the store lacks is expired once its window
// has passed, else no_reservation.
//
// Anti-passback is the plate's presence, which is the reservation's too: a
// code cannot bring in a second car on a booking whose car is inside. At an
// exit the plate's presence opens as for a read, so a car is never kept in.
func DecideCode(c CodeRead, lotID string, v View, now time.Time, p Policy) Decision {
	if c.Code == nil || c.Code.LotID != lotID {
		return deny(ReasonInvalidCode, "", "", false)
	}
	ps := PlateState{Plate: c.Code.Plate, Presence: v.Exact.Presence}
	for _, r := range v.Exact.Reservations {
		if r.ID == c.Code.ReservationID {
			ps.Reservations = append(ps.Reservations, r)
		}
	}
	if len(ps.Reservations) == 0 && (c.Direction != protocol.DirectionExit || ps.Presence == nil) {
		if !now.Before(c.Code.EndsAt) {
			return deny(protocol.ReasonExpired, c.Code.Plate, c.Code.ReservationID, false)
		}
		return deny(protocol.ReasonNoReservation, c.Code.Plate, c.Code.ReservationID, false)
	}
	read := PlateRead{GateID: c.GateID, Direction: c.Direction, Plate: c.Code.Plate, Confidence: 1}
	return Decide(read, View{Exact: ps}, now, p)
}
