package cloud

import (
	"context"
	"time"
)

// HoldParams is one request for a PENDING hold.
type HoldParams struct {
	ID       string // the new reservation's id, chosen by the caller
	LotID    string
	SpotID   string // a spot label, or "" for any free spot
	Plate    string // normalised
	StartsAt time.Time
	EndsAt   time.Time
	HoldTTL  time.Duration
	Price    Money

	// Idempotency: the key, a hash of the request it was first used with,
	// how long the request may stay in flight before a retry may take it
	// over, and the body stored for a 409 no_availability answer.
	Key          string
	RequestHash  []byte
	Lease        time.Duration
	ConflictBody []byte
	// FinalStatus, when not 0, stores the key done with this status and no
	// body in the hold's own transaction: for a hold that is final as soon
	// as it is made, whose body is the reservation as made.
	FinalStatus int
	// AccessToken is the driver's credential, kept under the key for a
	// replay's 201; AccessTokenHash its SHA-256, kept on the reservation.
	AccessToken     string
	AccessTokenHash []byte
	// Rate is the lot's hourly rate Price was computed from: the hold is
	// refused HoldRateChanged when the lot's rate is another now. The zero
	// Money skips the check.
	Rate Money
	// Session is the payment session made for this hold before it, kept
	// on the reservation as it is made; the zero Session for none.
	Session Session
	// NoWait: when another transaction has locked the lot's row for
	// update (another hold, a writer of the lot's seq), make nothing and
	// answer HoldLotLocked at once rather than wait for it. A key-share
	// lock, as an insert of a row keyed to the lot takes (an edge's
	// denied plates), does not stop a hold (migration 026). For a hold that
	// shares its transaction with other lots' holds, so that one lot's
	// contention does not hold up the others.
	NoWait bool
}

// Hold outcomes: what the store decided about one HoldParams.
const (
	HoldHeld           = "held"            // the hold was made
	HoldKeyExists      = "key_exists"      // the key is stored already; nothing was made
	HoldUnknownSpot    = "unknown_spot"    // SpotID names no spot of the lot
	HoldNoAvailability = "no_availability" // no spot is free for the window; ConflictBody is stored under the key
	HoldLotClosed      = "lot_closed"      // the lot is closed to holds; the key is forgotten
	HoldRateChanged    = "rate_changed"    // the lot's rate is not the one the price came from; nothing kept
	HoldLotLocked      = "lot_locked"      // NoWait, and another transaction holds the lot; nothing was made
)

// HoldResult is what the store decided about one hold; the fields but
// Outcome are set only when it is HoldHeld.
type HoldResult struct {
	Outcome       string
	SpotID        string
	HoldExpiresAt time.Time
	CreatedAt     time.Time
	// Seq is the hold's change in the lot's log, which the edges hear of;
	// 0 for a PENDING hold, which they need not know before it is paid.
	Seq int64
}

// HoldOutcome is one answer of ReservationStore.Holds: a result, or the
// error of that one request.
type HoldOutcome struct {
	HoldResult
	Err error
}

// KeyRecord is a stored idempotency key.
type KeyRecord struct {
	Key            string
	RequestHash    []byte
	ReservationID  string
	ResponseStatus int // 0 while in flight
	ResponseBody   []byte
	AccessToken    string // the hold's access token, for a replay's body
}

// Done reports whether the key has its final response.
func (k KeyRecord) Done() bool { return k.ResponseStatus != 0 }

// PaymentFields are bookkeeping columns set alongside a status change; the
// zero value of a field leaves it as it is.
type PaymentFields struct {
	PaymentIntentID string
	RefundID        string
	SessionClosed   bool
}

// OpenSession is a Checkout Session whose hold ended but which the payment
// provider may still take money through.
type OpenSession struct {
	ReservationID string
	SessionID     string
}

// ProviderWork names a queue of work a worker asks of the payment provider
// for reservations (booking.Service.RunWorkers).
type ProviderWork string

// The provider work queues.
const (
	WorkCloseSession    ProviderWork = "close_session"    // expire an ended hold's Checkout Session
	WorkRefund          ProviderWork = "refund"           // refund a cancellation
	WorkOverstaySession ProviderWork = "overstay_session" // open an overstay's Checkout Session
)

// CancelOutcome is what ReservationStore.Cancel decided.
type CancelOutcome string

// Cancel outcomes.
const (
	CancelNotFound       CancelOutcome = "not_found"
	CancelDone           CancelOutcome = "cancelled"        // now CANCELLED, its delete in the lot's change log
	CancelDoneSilent     CancelOutcome = "cancelled_silent" // now CANCELLED from PENDING: no edge had it, nothing for the relay (migration 021)
	CancelAlready        CancelOutcome = "already"          // it was CANCELLED already; nothing written
	CancelNotCancellable CancelOutcome = "not_cancellable"  // checked in, final, or past the policy
)

// ExtensionParams is one request to extend a reservation to EndsAt: the
// interval [From, EndsAt) on its spot, From being the reservation's ends_at
// the price was computed from.
type ExtensionParams struct {
	ID          string // the extension's id, chosen by the caller
	ParentID    string
	From        time.Time
	EndsAt      time.Time
	HoldTTL     time.Duration
	Price       Money
	Key         string
	RequestHash []byte
	Lease       time.Duration
	Now         time.Time
}

// ExtensionHold is what the store decided about an ExtensionParams; the
// times are set when the outcome is ExtensionHeld.
type ExtensionHold struct {
	Outcome       string
	HoldExpiresAt time.Time
	CreatedAt     time.Time
}

// Extension outcomes of HoldExtension and Extend.
const (
	ExtensionHeld           = "held"
	ExtensionKeyExists      = "key_exists"
	ExtensionNotFound       = "not_found"
	ExtensionNotExtendable  = "not_extendable"
	ExtensionChanged        = "changed" // the reservation's ends_at moved since it was read
	ExtensionNoAvailability = "no_availability"
	ExtendDone              = "extended"
	ExtendAlready           = "already"
	ExtendRefund            = "refund" // paid too late, or for a reservation no longer extendable
)

// PaidExtension is an extension merged into its reservation and the
// payment it was bought with.
type PaidExtension struct {
	ID              string
	PaymentIntentID string
}

// DueOverstay is one overstay the worker has to price or hand to the
// payment provider; Amount is nil until priced.
type DueOverstay struct {
	ReservationID string
	LotID         string
	Minutes       int
	Amount        *int64
	SessionID     string
	Sessions      int // sessions opened before, expired unpaid
}

// LotMatch is one search result.
type LotMatch struct {
	Lot       Lot
	DistanceM float64
	Available int
}

// LotStore keeps lots and answers questions about their spots. A lot's
// spots never change once made; its settings change through
// OperatorStore.UpdateLot.
type LotStore interface {
	// CreateLot stores a lot and its spots and returns it with its new id,
	// its TotalSpots and CreatedAt; an invalid_request error on spots when
	// the labels are not unique.
	CreateLot(ctx context.Context, lot Lot) (Lot, error)
	// Lot returns a lot without its spot list, or a not_found error (also
	// for an id that is not a UUID).
	Lot(ctx context.Context, id string) (Lot, error)
	// Availability returns how many of a lot's spots are free for the whole
	// of [start, end), and how many it has; a not_found error for no lot.
	Availability(ctx context.Context, lotID string, start, end time.Time) (available, total int, err error)
	// SearchLots returns the lots within radiusM metres of (lat, lng),
	// nearest first, at most limit, with their availability over
	// [start, end); an empty list when there are none.
	SearchLots(ctx context.Context, lat, lng, radiusM float64, start, end time.Time, limit int) ([]LotMatch, error)
	// LotsNamed returns the lots whose name contains name, case folded,
	// by name, at most limit, with their availability over [start, end)
	// (DistanceM 0); an empty list when there are none.
	LotsNamed(ctx context.Context, name string, start, end time.Time, limit int) ([]LotMatch, error)
}

// LotReader answers the questions about lots that may be answered from a
// read replica (DATABASE_READ_URL) rather than the primary. A replica
// applies the primary's commits some time after they happen: milliseconds
// with streaming replication at rest, without bound while it is behind or
// cut off. So its answers may be that old: a spot counted free that a hold
// has taken since, one counted taken that has been freed since, a lot made
// since missing altogether. Only what no booking depends on may come from
// here: search results are a hint, and the hold, decided on the primary by
// its exclusion constraint, is what decides. Availability, holds and any
// read that must see a lot just made (a hold's price, an edge token) stay
// on the primary or the write-through cache.
type LotReader interface {
	// SearchLots is LotStore.SearchLots, as of the replica's last replay.
	SearchLots(ctx context.Context, lat, lng, radiusM float64, start, end time.Time, limit int) ([]LotMatch, error)
}

// ReservationStore is the authoritative store of reservations and their
// idempotency keys. It decides every question of who gets a spot. Errors it
// returns carry cloud codes where the caller can act on them: not_found,
// and unavailable when the store cannot be reached (the caller answers
// "retry", settled by the client's retry with the same key).
type ReservationStore interface {
	// Holds makes holds, of one lot or several, together where it can:
	// one outcome per request in order; one request's failure (in its
	// outcome's Err) is never another's.
	Holds(ctx context.Context, ps []HoldParams) []HoldOutcome
	// IdempotencyKey returns a live stored key, or ok false when there is
	// none.
	IdempotencyKey(ctx context.Context, key string) (rec KeyRecord, ok bool, err error)
	// KnownKeys reports, for each key, whether it is stored (done or in
	// flight).
	KnownKeys(ctx context.Context, keys []string) ([]bool, error)
	// TakeOverKey claims an in-flight key whose lease has run out for
	// another lease; false when the key is done, still leased, or gone.
	TakeOverKey(ctx context.Context, key string, lease time.Duration) (bool, error)
	// DeleteKey forgets a key, so that a retry starts afresh.
	DeleteKey(ctx context.Context, key string) error
	// FinishHold stores the payment session (when sessionID is not empty)
	// on the reservation and the final response under its key.
	FinishHold(ctx context.Context, reservationID, sessionID, sessionURL, key string, status int, body []byte) error
	// AbandonHold cancels a PENDING hold and forgets its key (when not
	// empty), so the spot is free again at once.
	AbandonHold(ctx context.Context, reservationID, key string) error
	// Reservation returns a reservation by id, or a not_found error.
	Reservation(ctx context.Context, id string) (Reservation, error)
	// ReservationBySession returns the reservation paid through a Checkout
	// Session, or a not_found error.
	ReservationBySession(ctx context.Context, sessionID string) (Reservation, error)
	// Change moves a reservation from one of the statuses in from to to and
	// sets the payment fields given. It reports whether the status changed
	// (false, nil for a reservation in none of from) and, when it did, the
	// reservation's lot.
	Change(ctx context.Context, id string, from []Status, to Status, pay PaymentFields) (changed bool, lotID string, err error)
	// ConfirmHold moves a PENDING reservation whose hold still stands at
	// the given time to CONFIRMED, recording the payment; false when it
	// was not such a hold (or no reservation at all).
	ConfirmHold(ctx context.Context, id, paymentIntentID string, at time.Time) (changed bool, lotID string, err error)
	// SetPaymentFields records payment bookkeeping without a status change.
	SetPaymentFields(ctx context.Context, id string, p PaymentFields) error
	// ExpireDue ends every PENDING hold whose time is up, and returns how
	// many it ended by lot, also with an error (those have ended). A lot
	// another transaction holds is waited for briefly, then left to a
	// later call.
	ExpireDue(ctx context.Context) (ended map[string]int, err error)
	// SessionsToClose returns up to limit sessions of ended holds not yet
	// closed at the payment provider, but those deferred (DeferProviderWork).
	SessionsToClose(ctx context.Context, limit int) ([]OpenSession, error)
	// Cancel cancels a reservation as a driver may (see CancelOutcome) at
	// the given time, under the lot's free_cancellation policy, with its
	// change-log row; lotID is set unless the outcome is CancelNotFound.
	Cancel(ctx context.Context, id string, at time.Time) (outcome CancelOutcome, lotID string, err error)
	// FinishRefund records that the payment provider took the refund a
	// cancellation owed (refund_status succeeded, its id).
	FinishRefund(ctx context.Context, id, refundID string) error
	// PaidExtensions returns the extensions merged into a reservation, each
	// with its own payment: its id and payment intent.
	PaidExtensions(ctx context.Context, reservationID string) ([]PaidExtension, error)
	// PendingRefunds returns up to limit reservations whose cancellation
	// owes a refund not yet taken by the provider, and untouched for at
	// least olderThan (the cancel's own call is not raced needlessly), but
	// those deferred (DeferProviderWork).
	PendingRefunds(ctx context.Context, olderThan time.Duration, limit int) ([]string, error)
	// HoldExtension holds an extension's interval on its reservation's spot
	// (see ExtensionParams and the Extension* outcomes).
	HoldExtension(ctx context.Context, p ExtensionParams) (ExtensionHold, error)
	// Extend merges a paid extension into its reservation (see the Extend*
	// outcomes), recording the payment; lotID is set unless not found.
	Extend(ctx context.Context, extensionID, paymentIntentID string, at time.Time) (outcome string, lotID string, err error)
	// DueOverstays returns up to limit overstays not yet priced or without
	// a Checkout Session, oldest exit first, but those deferred
	// (DeferProviderWork).
	DueOverstays(ctx context.Context, limit int) ([]DueOverstay, error)
	// PriceOverstay sets an overstay's amount unless it has one, and
	// returns the amount it has now: an overstay is priced once.
	PriceOverstay(ctx context.Context, reservationID string, amount int64) (int64, error)
	// SetOverstaySession records an overstay's Checkout Session; with an
	// empty sessionID (nothing to pay) it marks the overstay paid.
	SetOverstaySession(ctx context.Context, reservationID, sessionID, url string) error
	// OverstaySessionExpired forgets an unpaid overstay's expired session,
	// so the worker opens another; false when sessionID is not its session.
	OverstaySessionExpired(ctx context.Context, reservationID, sessionID string) (bool, error)
	// OverstayPaid marks paid the overstay paid through sessionID, and
	// reports whether there was such an overstay.
	OverstayPaid(ctx context.Context, reservationID, sessionID, paymentIntentID string) (bool, error)
	// PurgeKeys deletes the idempotency keys past their lifetime and
	// reports how many.
	PurgeKeys(ctx context.Context) (int64, error)
	// DeferProviderWork holds a reservation the provider refused back from
	// that work's queue (SessionsToClose, PendingRefunds, DueOverstays)
	// until the time it returns: a minute after the first refusal, twice
	// as long after each next one, at most an hour. reason is kept for
	// whoever looks; attempts counts the refusals.
	DeferProviderWork(ctx context.Context, work ProviderWork, reservationID, reason string) (retryAt time.Time, attempts int, err error)
	// PurgeProviderRetries forgets the refusals none has followed for a
	// day (the work done since, or gone from its queue), and reports how
	// many.
	PurgeProviderRetries(ctx context.Context) (int64, error)
	// LeadProviderWork makes this replica, until release, the one that
	// works the queues above with the payment provider; ok is false, and
	// release a no-op, while another replica does. The lead ends with the
	// holder's connection to the store, so a replica that dies frees it.
	LeadProviderWork(ctx context.Context) (release func(), ok bool, err error)
}

// Store is the whole store the service and the API use.
type Store interface {
	LotStore
	ReservationStore
	OperatorStore
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}
