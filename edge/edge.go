package edge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// Gate is one lane of the lot: an entry or an exit barrier with its camera.
type Gate struct {
	ID        string
	Direction string // protocol.DirectionEntry or protocol.DirectionExit
}

// ParseGates reads PARKGATE_GATES: comma-separated id=direction pairs such as
// "entry-1=entry,exit-1=exit". Gate ids become MQTT topic levels, so they may
// not contain '/', '+' or '#'.
func ParseGates(s string) ([]Gate, error) {
	var gates []Gate
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, dir, ok := strings.Cut(part, "=")
		id, dir = strings.TrimSpace(id), strings.TrimSpace(dir)
		switch {
		case !ok || id == "":
			return nil, fmt.Errorf("gate %q: want id=entry or id=exit", part)
		case len(id) > 64:
			return nil, fmt.Errorf("gate %q: id longer than 64 characters", id)
		case strings.ContainsAny(id, "/+# "):
			return nil, fmt.Errorf("gate %q: id may not contain '/', '+', '#' or spaces", id)
		case dir != protocol.DirectionEntry && dir != protocol.DirectionExit:
			return nil, fmt.Errorf("gate %q: direction %q is neither entry nor exit", id, dir)
		case seen[id]:
			return nil, fmt.Errorf("gate %q listed twice", id)
		}
		seen[id] = true
		gates = append(gates, Gate{ID: id, Direction: dir})
	}
	if len(gates) == 0 {
		return nil, fmt.Errorf("no gates")
	}
	return gates, nil
}

// Policy is what an operator tunes per lot.
type Policy struct {
	// EarlyGrace lets a car in this long before its reservation starts.
	EarlyGrace time.Duration
	// ExitGrace is how long after ends_at a car may leave without the stay
	// counting as an overstay.
	ExitGrace time.Duration
	// MinConfidence is the camera confidence (0..1) below which an entry read
	// is refused.
	MinConfidence float64
	// Pulse is how long the barrier relay is held closed to open the barrier.
	Pulse time.Duration
	// MaxReadAge is how old a read's captured_at may be before the read is
	// refused as stale_read; zero means DefaultMaxReadAge.
	MaxReadAge time.Duration
}

// DefaultPolicy is what a lot gets when the operator sets nothing.
func DefaultPolicy() Policy {
	return Policy{
		EarlyGrace:    15 * time.Minute,
		ExitGrace:     15 * time.Minute,
		MinConfidence: 0.8,
		Pulse:         500 * time.Millisecond,
		MaxReadAge:    DefaultMaxReadAge,
	}
}

// Validate rejects settings no lot can run with.
func (p Policy) Validate() error {
	switch {
	case p.EarlyGrace < 0 || p.ExitGrace < 0:
		return fmt.Errorf("policy: negative grace")
	case p.MaxReadAge < 0:
		return fmt.Errorf("policy: negative max read age")
	case p.MinConfidence < 0 || p.MinConfidence > 1:
		return fmt.Errorf("policy: min confidence %v outside 0..1", p.MinConfidence)
	case p.Pulse <= 0:
		return fmt.Errorf("policy: barrier pulse must be positive")
	}
	return nil
}

// PlateRead is one camera read at a gate. Plate is already normalised
// (protocol.NormalizePlate); Direction is the gate's.
type PlateRead struct {
	GateID     string
	Direction  string
	Plate      string
	Confidence float64
	CapturedAt time.Time
}

// Reservation is a confirmed booking as the edge stores it: the plate is
// normalised, the window half-open [StartsAt, EndsAt).
type Reservation struct {
	ID       string
	Plate    string
	StartsAt time.Time
	EndsAt   time.Time
	Status   protocol.Status // one that opens the gate: CONFIRMED or CHECKED_IN
}

// Permit lets a plate in during [ValidFrom, ValidUntil) without a
// reservation, as the cloud synced it: the plate is normalised.
type Permit struct {
	ID         string
	Plate      string
	ValidFrom  time.Time
	ValidUntil time.Time
}

// Presence records that a plate is inside the lot, for anti-passback and to
// measure an overstay when it leaves even if its reservation was since
// deleted. A car let in on a permit has PermitID and no ReservationID, and
// no EndsAt: a permit's stay is never an overstay.
type Presence struct {
	Plate         string
	ReservationID string
	PermitID      string `json:",omitempty"`
	GateID        string
	EnteredAt     time.Time
	EndsAt        time.Time
}

// PlateState is everything the store knows about one normalised plate.
type PlateState struct {
	Plate        string
	Reservations []Reservation // ordered by StartsAt
	Permits      []Permit      // ordered by ValidFrom
	Presence     *Presence     // nil unless the plate is inside
}

// Known reports whether the store holds anything about the plate.
func (s PlateState) Known() bool {
	return len(s.Reservations) > 0 || len(s.Permits) > 0 || s.Presence != nil
}

// View is what the store returns for a read: the read plate itself and every
// other plate a noisy read could have meant (look-alike characters or a
// missing last character). Candidates never repeats Exact.Plate.
type View struct {
	Exact      PlateState
	Candidates []PlateState
}

// PresenceOp says what a decision does to the presence set.
type PresenceOp int

const (
	PresenceKeep  PresenceOp = iota // nothing changes
	PresenceEnter                   // the plate is now inside
	PresenceLeave                   // the plate is no longer inside
)

// Decision is the outcome of Decide.
type Decision struct {
	Decision        string // protocol.DecisionOpen or protocol.DecisionDeny
	Reason          string // protocol.Reason*
	Plate           string // the plate decided about: the read, or the one a fuzzy read matched
	ReservationID   string
	Fuzzy           bool // the read matched Plate only through look-alikes or a missing character
	OverstayMinutes int
	Presence        PresenceOp
	Entered         *Presence // set with PresenceEnter
}

// Open reports whether the barrier opens.
func (d Decision) Open() bool { return d.Decision == protocol.DecisionOpen }

// ReasonPresenceReset is the reason on the event an operator's presence reset
// writes. It lives here rather than in protocol because no gate decides with
// it; the cloud sees it with kind "reset".
const ReasonPresenceReset = "presence_reset"

// Record is what the agent writes for one gate event: the event for the
// outbox and the presence change it made, committed together.
type Record struct {
	Event    protocol.GateEvent
	Presence PresenceChange
}

// PresenceChange is a presence update keyed by normalised plate.
type PresenceChange struct {
	Op       PresenceOp
	Plate    string
	Presence Presence // with PresenceEnter
}

// OutboxEntry is a gate event waiting for the broker's acknowledgement. Key
// orders entries in the order they were recorded.
type OutboxEntry struct {
	Key     uint64
	GateID  string
	EventID string
	Payload []byte // the protocol.GateEvent as published
}

// Store is the agent's local state. Implementations must be safe for
// concurrent use.
type Store interface {
	// Lookup returns what is stored about a normalised plate read and about
	// every plate the read could mean. It reads only local state and must be
	// fast: it is on the path between the camera and the barrier.
	Lookup(plate string) (View, error)
	// Record queues rec for a group commit and returns at once. The presence
	// change is visible to Lookup before Record returns; the channel yields
	// nil once the event is durable in the outbox, or the write error.
	Record(rec Record) <-chan error
	// LastSeq returns the sequence number of the last applied reservation
	// change, 0 for a fresh store.
	LastSeq() (int64, error)
}

// SyncStore is the part of the store the cloud link writes.
type SyncStore interface {
	// LastSeq returns the last applied sequence number, 0 for a fresh store.
	LastSeq() (int64, error)
	// Apply applies verified changes in one transaction. Changes at or below
	// LastSeq are skipped; the rest must continue LastSeq without a gap, or
	// Apply fails with nothing applied. A change of a kind or op it cannot
	// use (protocol.ErrUnknownChange) changes nothing but its seq counts
	// as applied. It returns the new LastSeq.
	Apply(changes []protocol.ReservationChange) (int64, error)
}

// Outbox is the part of the store the link drains.
type Outbox interface {
	// Pending returns up to limit entries, oldest first.
	Pending(limit int) ([]OutboxEntry, error)
	// Ack removes entries the broker acknowledged; unknown keys are ignored.
	Ack(keys []uint64) error
	// Depth returns how many entries wait.
	Depth() int
	// Signal yields after a commit added entries; it has one reader.
	Signal() <-chan struct{}
}

// Barrier drives one gate's barrier relay.
type Barrier interface {
	// Open pulses the relay; it returns once the relay output is set, not
	// when the pulse ends. Opening an open barrier extends the pulse.
	Open() error
	// IsOpen reports whether the relay output is currently held.
	IsOpen() bool
}

// Link is what the agent asks of its connection to the cloud.
type Link interface {
	// Connected reports whether the broker connection is up now.
	Connected() bool
	// AppliedSeq returns the last reservation change applied.
	AppliedSeq() int64
}

// Observer is told about every decision, for metrics.
type Observer interface {
	Decided(gateID string, d Decision, elapsed time.Duration)
}

// waitCommit waits for a Record's commit or the context.
func waitCommit(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
