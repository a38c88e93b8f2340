package cloud

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// The ports of the edge sync. The store (cloud/postgres) implements the
// change log, the outbox leases, edge tokens and keys and gate events; the relay
// (cloud/relay) signs and publishes what they hold.

// Page sizes of a change-log read.
const (
	DefaultChangesLimit = 500
	MaxChangesLimit     = 1000
)

// EdgeTokenPrefix starts every edge token, so a leaked one is recognisable
// (secret scanners, logs) and a request can be refused before a database
// round trip when it does not even look like one.
const EdgeTokenPrefix = "pgedge_"

// Change is one row of a lot's change log (the outbox): a reservation as
// one change left it, numbered in the lot's sequence. It is unsigned; the
// relay signs it on the way out. A row of another Kind uses the same
// fields: a permit's id, plate and validity are ReservationID, Plate,
// StartsAt and EndsAt; a presence reset's command id, plate and issue time
// are ReservationID, Plate and StartsAt.
type Change struct {
	Seq           int64
	Kind          protocol.ChangeKind
	ReservationID string
	Op            protocol.Op
	Status        Status
	Plate         string
	StartsAt      time.Time
	EndsAt        time.Time
}

// ClaimedLot is a lot whose outbox lease a publisher took, with the first
// of its changes to publish.
type ClaimedLot struct {
	LotID   string
	Changes []Change
}

// Mark is one drain's acknowledged run of a lot's changes, From..To, to be
// stamped published; the drain's lease is renewed with it, or with Release
// given back.
type Mark struct {
	LotID    string
	From, To int64
	Release  bool
}

// Marked is what one Mark did: how long each change it stamped had waited
// since it was written (seconds, by the store's clock, in seq order), and
// whether the owner still held the lot's lease.
type Marked struct {
	Lags []float64
	Held bool
}

// ChangePage is one read of a lot's change log.
type ChangePage struct {
	LotID   string // in canonical form, however the caller spelled it
	LastSeq int64  // the lot's newest seq, from the same snapshot as Changes
	More    bool   // further changes wait beyond this page
	Changes []Change
}

// ChangeLog is the catch-up read of a lot's change log.
type ChangeLog interface {
	// ReadChanges returns the lot's changes after seq after, in seq
	// order, at most limit of them (DefaultChangesLimit when limit <= 0,
	// never more than MaxChangesLimit). An unknown lot is a not_found
	// error, a negative after an invalid_request.
	ReadChanges(ctx context.Context, lotID string, after int64, limit int) (ChangePage, error)
}

// ChangeFeed is what an edge catching up reads: the change log, each change
// signed with the cloud's key.
type ChangeFeed interface {
	// Changes returns the lot's signed changes after seq after, with the
	// paging and errors of ChangeLog.ReadChanges.
	Changes(ctx context.Context, lotID string, after int64, limit int) (protocol.ChangesPage, error)
}

// EdgeTokens are the lot-scoped credentials of edge agents.
type EdgeTokens interface {
	// CreateEdgeToken makes a new credential for the lot's edge agent and
	// returns it; it cannot be read again later. Earlier tokens stay valid
	// until revoked, which is how they are rotated. An unknown lot is a
	// not_found error.
	CreateEdgeToken(ctx context.Context, lotID string) (string, error)
	// VerifyEdgeToken reports whether token is a live (not revoked) edge
	// token of the lot. A malformed token or lot id is simply not valid;
	// an error means the answer is unknown.
	VerifyEdgeToken(ctx context.Context, lotID, token string) (bool, error)
	// RevokeEdgeToken makes token invalid for good. A token that is not a
	// live token of the lot is a not_found error.
	RevokeEdgeToken(ctx context.Context, lotID, token string) error
}

// EdgeKeys are the public keys that sign a lot's gate events. Each agent
// makes its own key and registers it, so a lot may have several (two
// agents, or one replaced); the ingest applies only events one of them
// verifies.
type EdgeKeys interface {
	// RegisterEdgeKey adds key to the lot's keys; created is false when it
	// was there already, which is not an error. An unknown lot is a
	// not_found error.
	RegisterEdgeKey(ctx context.Context, lotID string, key ed25519.PublicKey) (created bool, err error)
	// EdgeKeys returns the lot's keys, oldest first, none if it has none.
	// An unknown lot is a not_found error; an unavailable error may pass
	// on another try.
	EdgeKeys(ctx context.Context, lotID string) ([]ed25519.PublicKey, error)
}

// Outbox is the change log as its publishers see it. Any number of
// publishers (one per replica) share it: a lease gives each lot to one of
// them at a time, so a lot's changes go out in order.
type Outbox interface {
	// ClaimOutboxLots takes, for owner, the lease of up to max lots with
	// unpublished changes that nobody else holds (or whose lease ran out),
	// oldest backlog first, and returns them, each with its first
	// unpublished changes (at most limit, as UnpublishedChanges reads them
	// after the claim; none read when limit is 0). A lease lasts ttl
	// unless renewed. A lease owner still holds is taken again, unless its
	// lot is in busy (the lots owner is draining now): a lease owner could
	// not give back (the database went away under the drain) must not keep
	// its own lot from it until the lease runs out.
	ClaimOutboxLots(ctx context.Context, owner string, ttl time.Duration, max int, busy []string, limit int) ([]ClaimedLot, error)
	// ClaimOutboxLotsOf is ClaimOutboxLots for the lots named, but those
	// in busy: those of them with unpublished changes that nobody else
	// holds. It looks at those lots alone, where ClaimOutboxLots looks
	// through every lot's unpublished changes: a publisher told which lots
	// changed claims them without reading the others' backlog. waiting
	// are the named lots with unpublished changes another owner holds.
	ClaimOutboxLotsOf(ctx context.Context, owner string, ttl time.Duration, lots, busy []string, limit int) (claimed []ClaimedLot, waiting []string, err error)
	// UnpublishedChanges returns the lot's first unpublished changes in
	// seq order, at most limit: a gap-free run starting at the first
	// change not yet delivered, as long as every publisher marks only a
	// prefix of what it sent.
	UnpublishedChanges(ctx context.Context, lotID string, limit int) ([]Change, error)
	// MarkPublished applies the marks of several lots, all of owner's and
	// each lot at most once, in one round trip, and returns what each did,
	// in the order given.
	// Changes marked already are left as they are; a lease owner no longer
	// holds is neither renewed nor given back (Held false).
	MarkPublished(ctx context.Context, owner string, ttl time.Duration, marks []Mark) ([]Marked, error)
	// ReleaseOutboxLease gives the lot back if owner holds it.
	ReleaseOutboxLease(ctx context.Context, lotID, owner string) error
	// ReleaseOutboxLeases gives back every lot owner holds.
	ReleaseOutboxLeases(ctx context.Context, owner string) error
	// OutboxBacklog counts the changes not yet published, of every lot.
	OutboxBacklog(ctx context.Context) (int64, error)
}

// Transition is a status change asked of a reservation: from one of From
// to To. The zero Transition asks for none.
type Transition struct {
	From []Status
	To   Status
}

// GateEventResult is what storing one gate event did.
type GateEventResult struct {
	Duplicate bool   // the event was stored before; nothing was done
	Moved     Status // the status the reservation moved to, or ""
	Seq       int64  // the change's seq when it moved
}

// GateEventStore keeps what the gates report.
type GateEventStore interface {
	// IngestGateEvent stores a validated event once by its event id and,
	// the first time only, moves the event's reservation as t says — in
	// one transaction, so a redelivered event can neither be lost nor move
	// a reservation twice. Only a reservation of the event's lot moves, and
	// only from one of t.From. An unknown lot is a not_found error; a
	// failure that may pass on another try is an unavailable error.
	IngestGateEvent(ctx context.Context, e *protocol.GateEvent, t Transition) (GateEventResult, error)
	// RecordGateStatus records a gate's status (st.State, st.SyncSeq with 0
	// for none, st.At) unless a newer one is stored, and returns the
	// transition it made: protocol.StateOnline or StateOffline when the
	// gate's state changed (with its edge.* alert), "" otherwise. live says
	// the broker relayed it as it was published rather than replaying a
	// retained copy: a live offline over an online is the agent's last
	// will, whose at was fixed when the agent connected, and applies
	// although older, unless the online was received after it (received:
	// when the message reached the cloud, before any queueing, so handlers
	// that run out of order cannot put a dead connection's will over the
	// next connection's online). Errors as for IngestGateEvent.
	RecordGateStatus(ctx context.Context, lotID, gateID string, st protocol.GateStatus, live bool, received time.Time) (string, error)
}
