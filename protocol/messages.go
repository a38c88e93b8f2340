package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the message version written in every message's "v" field. A
// receiver refuses versions it does not know rather than guess at their meaning.
const Version = 1

// Op says what a reservation change does to the edge's copy.
type Op string

const (
	// OpUpsert stores or replaces the reservation: the plate may pass the gate
	// within its window.
	OpUpsert Op = "upsert"
	// OpDelete removes it: cancelled, expired, refunded, completed.
	OpDelete Op = "delete"
)

// Status is where a reservation is in its life, as the cloud names it. The
// cloud stores it, the change log carries it to the edges, and the rules over
// it (Active, OpensGate) are written here once for both sides.
type Status string

// Reservation statuses.
const (
	StatusPending   Status = "PENDING"
	StatusConfirmed Status = "CONFIRMED"
	StatusCheckedIn Status = "CHECKED_IN"
	StatusCompleted Status = "COMPLETED"
	StatusExpired   Status = "EXPIRED"
	StatusCancelled Status = "CANCELLED"
	StatusRefunded  Status = "REFUNDED"
)

// Statuses returns every status, in the order of a reservation's life. Tests
// walk it to hold each copy of a rule that lives outside Go (the database's
// constraints and functions) to the rule here.
func Statuses() []Status {
	return []Status{StatusPending, StatusConfirmed, StatusCheckedIn, StatusCompleted,
		StatusExpired, StatusCancelled, StatusRefunded}
}

// Active reports whether the status holds a spot: the database refuses two
// active reservations of one spot whose windows overlap.
func (s Status) Active() bool {
	return s == StatusPending || s == StatusConfirmed || s == StatusCheckedIn
}

// OpensGate reports whether a gate may open for a reservation with the
// status: paid and not yet over. A PENDING hold is not paid, so it never
// opens one.
func (s Status) OpensGate() bool {
	return s == StatusConfirmed || s == StatusCheckedIn
}

// OpFor is the op under which a change to a reservation with the given status
// reaches the edges. The edge stores only what may open the gate, so only
// those statuses are upserts; every other status (a PENDING hold included)
// is a delete, so an edge can never store an unpaid reservation.
func OpFor(status Status) Op {
	if status.OpensGate() {
		return OpUpsert
	}
	return OpDelete
}

// Reservation is the part of a booking an edge needs to decide at the gate.
type Reservation struct {
	ID       string    `json:"id"`
	Plate    string    `json:"plate"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	Status   Status    `json:"status"`
}

// ReservationChange is one entry of a lot's change log, published on
// ReservationsTopic and served by the catch-up endpoint. Seq is strictly
// increasing and gap-free per lot, so an edge that sees seq n+2 after n knows
// it missed one. Sig is the cloud's ed25519 signature over SigningBytes.
//
// Kind says what the change is about: empty for a reservation (every change
// before permits existed, byte for byte as it was), or one of the Kind*
// constants of change.go, whose body is Data and whose Reservation is
// empty. See change.go for how a receiver treats a kind it does not know.
type ReservationChange struct {
	V           int               `json:"v"`
	LotID       string            `json:"lot_id"`
	Seq         int64             `json:"seq"`
	Kind        ChangeKind        `json:"kind,omitempty"`
	Op          Op                `json:"op"`
	Reservation Reservation       `json:"reservation,omitzero"`
	Data        map[string]string `json:"data,omitempty"`
	Sig         string            `json:"sig,omitempty"`
}

// Validate checks every field a receiver relies on: the envelope
// (CheckEnvelope) and the body of a kind this build knows. A change that
// passes CheckEnvelope and Verify but fails Validate is one the cloud
// signed and this receiver cannot use: see ErrUnknownChange.
func (c *ReservationChange) Validate() error {
	if err := c.CheckEnvelope(); err != nil {
		return err
	}
	if c.Kind != KindReservation {
		return c.validateBody()
	}
	switch {
	case c.Op != OpUpsert && c.Op != OpDelete:
		return fmt.Errorf("protocol: unknown op %q", c.Op)
	case c.Reservation.ID == "":
		return fmt.Errorf("protocol: change without reservation id")
	case c.Op == OpUpsert && !c.Reservation.StartsAt.Before(c.Reservation.EndsAt):
		return fmt.Errorf("protocol: upsert with empty window")
	}
	return nil
}

// CheckEnvelope checks what every change of every kind carries and what a
// receiver needs before it can even order it: the version, the lot and a
// positive seq. It is all a receiver checks before the signature.
func (c *ReservationChange) CheckEnvelope() error {
	switch {
	case c.V != Version:
		return fmt.Errorf("protocol: unsupported version %d", c.V)
	case c.LotID == "":
		return fmt.Errorf("protocol: change without lot_id")
	case c.Seq <= 0:
		return fmt.Errorf("protocol: change seq %d not positive", c.Seq)
	}
	return nil
}

// ChangesPage is the body of GET /v1/edge/lots/{lot_id}/changes?after=SEQ.
// LastSeq is the lot's newest sequence number at the time of the read, so an
// edge knows whether it has caught up; More says a further page is waiting.
type ChangesPage struct {
	LotID   string              `json:"lot_id"`
	Changes []ReservationChange `json:"changes"`
	LastSeq int64               `json:"last_seq"`
	More    bool                `json:"more"`
}

// Gate directions.
const (
	DirectionEntry = "entry"
	DirectionExit  = "exit"
)

// Gate decisions.
const (
	DecisionOpen = "open"
	DecisionDeny = "deny"
)

// Reasons a gate gives for its decision; the cloud counts them and the
// simulator checks them.
const (
	ReasonValid          = "valid"           // entry within the window
	ReasonInside         = "inside"          // exit of a plate that is inside
	ReasonNoReservation  = "no_reservation"  // nothing for this plate
	ReasonTooEarly       = "too_early"       // before starts_at - early grace
	ReasonExpired        = "expired"         // after ends_at
	ReasonAlreadyInside  = "already_inside"  // anti-passback on entry
	ReasonNotInside      = "not_inside"      // exit of a plate never seen entering
	ReasonLowConfidence  = "low_confidence"  // camera not sure enough
	ReasonAmbiguous      = "ambiguous_plate" // a fuzzy read that fits two plates
	ReasonManualOverride = "manual_override" // an operator opened the barrier
	ReasonPermit         = "permit"          // a permit of the plate is valid now
)

// Gate event kinds.
const (
	KindDecision = "decision" // a plate read and what the gate did about it
	KindOverride = "override" // the manual override input opened the barrier
	KindReset    = "reset"    // an operator reset a plate's presence
)

// GateEvent is what an edge publishes for every decision, on GateEventsTopic.
// EventID is unique (the edge makes it) so the cloud ingests it exactly once
// however often it is redelivered. Sig is the agent's ed25519 signature over
// SigningBytes, by a key registered for the lot: the cloud applies nothing it
// cannot verify, so the broker's ACL is not the only thing between a forger
// and a reservation.
type GateEvent struct {
	V               int       `json:"v"`
	EventID         string    `json:"event_id"`
	Kind            string    `json:"kind,omitempty"`
	LotID           string    `json:"lot_id"`
	GateID          string    `json:"gate_id"`
	Direction       string    `json:"direction"`
	Plate           string    `json:"plate"`
	Confidence      float64   `json:"confidence"`
	Decision        string    `json:"decision"`
	Reason          string    `json:"reason"`
	ReservationID   string    `json:"reservation_id,omitempty"`
	Fuzzy           bool      `json:"fuzzy,omitempty"`
	OverstayMinutes int       `json:"overstay_minutes,omitempty"`
	Offline         bool      `json:"offline,omitempty"`
	OccurredAt      time.Time `json:"occurred_at"`
	DecidedInUs     int64     `json:"decided_in_us"`
	// Note is free text an operator gave with a remote open (the audit's
	// "why"); empty on every event a gate decided itself.
	Note string `json:"note,omitempty"`
	Sig  string `json:"sig,omitempty"`
}

// Validate checks a gate event as the cloud receives it.
func (e *GateEvent) Validate() error {
	switch {
	case e.V != Version:
		return fmt.Errorf("protocol: unsupported version %d", e.V)
	case e.EventID == "" || e.LotID == "" || e.GateID == "":
		return fmt.Errorf("protocol: gate event without event_id, lot_id or gate_id")
	case e.Direction != DirectionEntry && e.Direction != DirectionExit:
		return fmt.Errorf("protocol: unknown direction %q", e.Direction)
	case e.Decision != DecisionOpen && e.Decision != DecisionDeny:
		return fmt.Errorf("protocol: unknown decision %q", e.Decision)
	case e.OccurredAt.IsZero():
		return fmt.Errorf("protocol: gate event without occurred_at")
	}
	return nil
}

// Gate states published, retained, on GateStatusTopic.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// GateStatus is the retained status of a gate. The agent's last will is the
// same message with State offline, so a subscriber always reads one shape.
type GateStatus struct {
	V       int       `json:"v"`
	LotID   string    `json:"lot_id"`
	GateID  string    `json:"gate_id"`
	State   string    `json:"state"`
	SyncSeq int64     `json:"sync_seq,omitempty"`
	At      time.Time `json:"at"`
}

// Encode marshals a message; it exists so callers need not import
// encoding/json only to publish.
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode: %w", err)
	}
	return b, nil
}
