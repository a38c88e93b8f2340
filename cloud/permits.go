package cloud

import (
	"context"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// Permit lets a plate into a lot during [ValidFrom, ValidUntil) without a
// reservation: a monthly parker, staff. It reaches the lot's edges through
// the lot's change log like a reservation, and the edge opens for it with
// reason permit.
type Permit struct {
	ID         string    `json:"id"`
	LotID      string    `json:"lot_id"`
	Plate      string    `json:"plate"` // normalised
	ValidFrom  time.Time `json:"valid_from"`
	ValidUntil time.Time `json:"valid_until"`
	Label      string    `json:"label"`
	CreatedAt  time.Time `json:"created_at"`
}

// PresenceReset is an operator's command, sent down the lot's change log,
// that an edge forget a plate is inside (see protocol.PresenceReset).
type PresenceReset struct {
	ID       string    `json:"-"`
	LotID    string    `json:"lot_id"`
	Plate    string    `json:"plate"`
	IssuedAt time.Time `json:"-"`
	Seq      int64     `json:"seq"`
}

// GateOpen is an operator's remote open of one gate, sent down the lot's
// change log (see protocol.GateOpen): the edge running the gate opens it
// once, if it learns of it by NotAfter.
type GateOpen struct {
	ID       string    `json:"-"`
	LotID    string    `json:"lot_id"`
	GateID   string    `json:"gate_id"`
	Reason   string    `json:"reason"`
	IssuedAt time.Time `json:"issued_at"`
	NotAfter time.Time `json:"not_after"`
	Seq      int64     `json:"seq"`
}

// PermitStore keeps permits and writes them, and presence resets, into the
// lot's change log: each write and its change-log row (the lot's next seq)
// commit together, as every reservation change does.
type PermitStore interface {
	// CreatePermit stores p (its ID chosen by the caller, Plate normalised)
	// with its change-log row and returns it with CreatedAt, and the seq.
	// An unknown lot is a not_found error.
	CreatePermit(ctx context.Context, p Permit) (Permit, int64, error)
	// Permits returns the lot's permits not revoked and not ended at now,
	// by valid_from. An unknown lot is a not_found error.
	Permits(ctx context.Context, lotID string, now time.Time) ([]Permit, error)
	// RevokePermit revokes a live permit of the lot, with its change-log
	// row, and returns the seq. A permit that is not a live permit of the
	// lot (unknown, another lot's, revoked already) is a not_found error.
	RevokePermit(ctx context.Context, lotID, permitID string) (int64, error)
	// ResetPresence appends a presence reset of r.Plate to r.LotID's
	// change log, stamped with the store's clock, and returns it with
	// IssuedAt and Seq. An unknown lot is a not_found error.
	ResetPresence(ctx context.Context, r PresenceReset) (PresenceReset, error)
	// OpenGate appends a remote open of g.GateID to g.LotID's change log,
	// issued at the store's clock and valid for validity, and returns it
	// with IssuedAt, NotAfter and Seq. An unknown lot is a not_found error.
	OpenGate(ctx context.Context, g GateOpen, validity time.Duration) (GateOpen, error)
}

// Change kinds of the change log (protocol.ChangeKind), for Change.Kind.
const (
	ChangeReservation = protocol.KindReservation
	ChangePermit      = protocol.KindPermit
	ChangeReset       = protocol.KindPresenceReset
	ChangeGateOpen    = protocol.KindGateOpen
)
