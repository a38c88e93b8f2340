package cloud

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/parkgate/parkgate/protocol"
)

// What an operator does with a lot that runs: watch it, change it, page
// through its bookings and its gates' events, give money back.

// DeniedAlert is a lot's gate.denied_repeatedly threshold: Count denials of
// one plate within Window.
type DeniedAlert struct {
	Count  int      `json:"count"`
	Window Duration `json:"window"`
}

// Defaults of a lot's DeniedAlert, as the columns default.
const (
	DefaultDeniedAlertCount  = 5
	DefaultDeniedAlertWindow = 2 * time.Minute
)

// LotUpdate is a change of a lot's settings; nil fields stay as they are.
type LotUpdate struct {
	Name             *string
	HourlyRate       *Money
	Closed           *bool
	FreeCancellation *Duration
	ExitGrace        *Duration
	// The two halves of the lot's DeniedAlert, each on its own.
	DeniedAlertCount  *int
	DeniedAlertWindow *Duration
}

// Occupancy is how many plates are inside a lot by its edges' entries and
// exits, and when that last changed (the lot's creation if never).
type Occupancy struct {
	Inside    int       `json:"inside"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Lot states an operator and a driver see.
const (
	LotOpen   = "open"
	LotFull   = "full"
	LotClosed = "closed"
)

// LotState is what a lot is now: closed by its operator, else full when as
// many plates are inside as it has spots, else open.
func LotState(l Lot, o Occupancy) string {
	switch {
	case l.Closed:
		return LotClosed
	case o.Inside >= l.TotalSpots:
		return LotFull
	}
	return LotOpen
}

// ReservationCursor is a place in a lot's reservations, newest first: the
// reservations after it were created before CreatedAt, or at it with a
// smaller id.
type ReservationCursor struct {
	CreatedAt time.Time
	ID        string
}

// String is the opaque cursor of the page after c: base64url of its time
// in microseconds (as Postgres keeps it) and its id.
func (c ReservationCursor) String() string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseReservationCursor reads a cursor ReservationCursor.String made; an
// invalid_request on field cursor for anything else.
func ParseReservationCursor(s string) (ReservationCursor, error) {
	bad := FieldError("cursor", "cursor must be a next_cursor this endpoint answered")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ReservationCursor{}, bad
	}
	us, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil {
		return ReservationCursor{}, bad
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return ReservationCursor{}, bad
	}
	return ReservationCursor{CreatedAt: time.UnixMicro(n).UTC(), ID: u.String()}, nil
}

// ReservationFilter selects a page of a lot's reservations, newest first.
type ReservationFilter struct {
	LotID  string
	Status Status // "" for any
	Plate  string // normalised; "" for any
	// From and To, when set, keep the reservations whose window overlaps
	// [From, To).
	From, To time.Time
	After    *ReservationCursor // nil: from the newest
	Limit    int
}

// StoredGateEvent is a gate event as the cloud stored it: Seq its place in
// the lot's order of storage, ReceivedAt when the cloud stored it.
type StoredGateEvent struct {
	protocol.GateEvent
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"received_at"`
}

// Refund outcomes of OperatorStore.CreateRefund.
const (
	RefundCreated   = "created"    // a new refund, pending, with its parts
	RefundExists    = "exists"     // the key's refund, made before
	RefundInFlight  = "in_flight"  // the key's refund, its first request still at it
	RefundKeyReused = "key_reused" // the key was used with another amount
	RefundExceeds   = "exceeds"    // more than is left of what was paid
	RefundNotFound  = "not_found"
)

// RefundParams is one operator refund: Amount nil for all that is left.
type RefundParams struct {
	ID            string // the refund's id, chosen by the caller
	ReservationID string
	Amount        *int64
	Key           string // "" for none
	RequestHash   []byte
}

// RefundResult is what OperatorStore.CreateRefund decided: the refund's
// id (created or exists), its stored answer (exists, once one was stored),
// and what was left to refund before it.
type RefundResult struct {
	Outcome      string
	RefundID     string
	ResponseBody []byte
	Left         int64
}

// RefundPart is the share of a refund taken from one payment.
type RefundPart struct {
	Part             int
	PaymentIntentID  string
	Amount           int64
	ProviderRefundID string // "" until the provider took it
}

// OperatorStore is what the operator API needs of the store beyond
// LotStore and ReservationStore.
type OperatorStore interface {
	// UpdateLot changes a lot's settings in one transaction, under its
	// row lock (so a hold either sees the change or committed before it),
	// and returns the lot as it is now; not_found for no lot.
	UpdateLot(ctx context.Context, id string, u LotUpdate) (Lot, error)
	// Occupancy returns how many plates are inside the lot; not_found for
	// no lot.
	Occupancy(ctx context.Context, lotID string) (Occupancy, error)
	// LotReservations returns a page of a lot's reservations (never an
	// extension's own row), newest first, at most f.Limit, and whether
	// more follow.
	LotReservations(ctx context.Context, f ReservationFilter) (page []Reservation, more bool, err error)
	// LotGateEvents returns the lot's gate events stored after seq after,
	// in the order stored, at most limit.
	LotGateEvents(ctx context.Context, lotID string, after int64, limit int) ([]StoredGateEvent, error)
	// CreateRefund decides and records an operator's refund (see the
	// Refund* outcomes).
	CreateRefund(ctx context.Context, p RefundParams) (RefundResult, error)
	// RefundParts returns a refund's parts and its status.
	RefundParts(ctx context.Context, refundID string) (parts []RefundPart, status string, err error)
	// FinishRefundPart records that the provider took a part.
	FinishRefundPart(ctx context.Context, refundID string, part int, providerRefundID string) error
	// SettleRefund marks a refund succeeded (every part taken) or failed
	// (refused before any part was); nothing when it is no longer pending.
	SettleRefund(ctx context.Context, refundID, status string) error
	// StoreRefundResponse keeps body as the refund's answer unless one is
	// kept already, and returns the one kept.
	StoreRefundResponse(ctx context.Context, refundID string, body []byte) ([]byte, error)
	// PendingOperatorRefunds returns up to limit refunds still pending and
	// untouched for olderThan, oldest first, with their reservations.
	PendingOperatorRefunds(ctx context.Context, olderThan time.Duration, limit int) (refundIDs, reservationIDs []string, err error)
}
