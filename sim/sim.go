package sim

import (
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// Arrival is how a driver's car keeps to its booked window.
type Arrival string

const (
	ArrivalOnTime   Arrival = "on_time"  // arrives within the window, leaves before it ends
	ArrivalEarly    Arrival = "early"    // arrives before starts_at - early grace, is refused, comes back
	ArrivalLate     Arrival = "late"     // arrives after ends_at: the gate refuses (expired)
	ArrivalOverstay Arrival = "overstay" // enters on time, leaves after ends_at + exit grace
	ArrivalNoShow   Arrival = "no_show"  // never comes
	ArrivalIntruder Arrival = "intruder" // never booked, tries the gate anyway
	// ArrivalPermit holds a permit the operator made for it (issue 15):
	// it never books, enters and leaves within the permit's validity.
	ArrivalPermit Arrival = "permit"
	// ArrivalRevoked held a permit the operator revoked before it came: it
	// tries the entry once the revocation reached the edge, and must be
	// refused.
	ArrivalRevoked Arrival = "permit_revoked"
)

// Payment is how a driver pays at the Stripe stand-in.
type Payment string

const (
	PayNow   Payment = "now"   // pays as soon as the hold is made
	PayLate  Payment = "late"  // pays while the hold runs out: the cloud hears of it only after it ended
	PayNever Payment = "never" // abandons the checkout page
	// PayAfterExpiry comes back to the checkout page well after the hold
	// ended: Stripe should refuse, the cloud having expired the session.
	PayAfterExpiry Payment = "after_expiry"
)

// Network is how a phone's connection fails a request.
type Network string

const (
	NetworkOK Network = ""
	// NetworkLostAnswer: the request reaches the cloud and is answered, but
	// the answer never reaches the phone. The retry must get the same
	// answer back (Idempotent-Replayed).
	NetworkLostAnswer Network = "lost_answer"
	// NetworkImpatient: the app gives up after a few milliseconds, while
	// the cloud may still be working on the request.
	NetworkImpatient Network = "impatient"
)

// Life is what a driver does with a booking besides using it: the
// lifecycle journeys of issue 14.
type Life string

const (
	LifeNone Life = ""
	// LifeCancelIn cancels a confirmed booking within the lot's free
	// cancellation (a full refund), then shows its access code at the gate
	// anyway once the cancellation reached the edge: it must not open.
	LifeCancelIn Life = "cancel_in"
	// LifeCancelOut cancels after starts_at - free_cancellation and expects
	// 409 not_cancellable; then does not come.
	LifeCancelOut Life = "cancel_out"
	// LifeExtend enters, extends the booking by its own paid session, and
	// stays until the new end.
	LifeExtend Life = "extend"
	// LifeOverstayPay leaves after ends_at + exit grace and pays the
	// overstay's session when it appears.
	LifeOverstayPay Life = "overstay_pay"
	// LifeAccessCode comes to a lane whose camera misses the plate and
	// shows the reservation's access code at the edge instead.
	LifeAccessCode Life = "access_code"
	// LifeReset is a permit holder whose exit the camera missed: back at
	// the entry it is refused already_inside, the operator resets its
	// presence from the cloud, and once the edge has the reset it gets in.
	LifeReset Life = "presence_reset"
)

// Plan is what a driver means to do; the run records what happened.
type Plan struct {
	Arrival Arrival `json:"arrival"`
	Payment Payment `json:"payment"`
	Life    Life    `json:"life,omitempty"`
	// Network is what the driver's phone network does to the first hold
	// request; the driver then retries with the same Idempotency-Key.
	Network Network `json:"network,omitempty"`
	// Lot is the index of the lot the driver wants.
	Lot int `json:"lot"`
	// Start is when the booked window starts, from the run's start; Stay is
	// its length.
	Start time.Duration `json:"start"`
	Stay  time.Duration `json:"stay"`
	// BookAt is when the driver books, from the run's start.
	BookAt time.Duration `json:"book_at"`
}

// Lot is one simulated car park and its edge agent.
type Lot struct {
	Index int    `json:"index"`
	ID    string `json:"id"`
	Name  string `json:"name"`
	Spots int    `json:"spots"`
	// Currency is the lot's hourly rate's (ISO 4217), so money the run
	// reports carries its unit.
	Currency string `json:"currency"`
	// HourlyRate is the lot's rate in the currency's minor unit; the
	// overstay check prices from it.
	HourlyRate int64 `json:"hourly_rate"`
	// FreeCancellation and ExitGrace are the lot's policy in the cloud.
	FreeCancellation time.Duration `json:"free_cancellation"`
	ExitGrace        time.Duration `json:"exit_grace"`
	EdgeURL          string        `json:"edge_url"`
	Entry            []string      `json:"entry_gates"`
	Exit             []string      `json:"exit_gates"`
}

// HoldAttempt is one POST /v1/reservations.
type HoldAttempt struct {
	At       time.Time     `json:"at"`
	Latency  time.Duration `json:"latency"`
	Status   int           `json:"status"` // 0: no answer (timeout, connection error)
	Code     string        `json:"code,omitempty"`
	Replayed bool          `json:"replayed,omitempty"`
	Err      string        `json:"err,omitempty"`
}

// Journey is one driver from search to exit.
type Journey struct {
	Driver int    `json:"driver"`
	Plate  string `json:"plate"`
	Plan   Plan   `json:"plan"`
	LotID  string `json:"lot_id,omitempty"`

	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`

	SearchFound    int           `json:"search_found"` // lots the search listed with a free spot
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
	Holds          []HoldAttempt `json:"holds,omitempty"`
	ReservationID  string        `json:"reservation_id,omitempty"`
	SessionID      string        `json:"session_id,omitempty"`
	HoldExpiresAt  time.Time     `json:"hold_expires_at"`
	HoldCode       string        `json:"hold_code,omitempty"` // the final refusal, e.g. no_availability

	PaidAt          time.Time `json:"paid_at"`
	PaymentIntentID string    `json:"payment_intent_id,omitempty"`
	PayErr          string    `json:"pay_err,omitempty"`
	// WebhookAt is when the stand-in's payment event was let through to the
	// cloud; for a late payer it is after the hold ended.
	WebhookAt time.Time `json:"webhook_at"`
	// Confirmed is when the driver's app first showed the booking CONFIRMED.
	ConfirmedAt time.Time `json:"confirmed_at"`

	EnteredAt time.Time `json:"entered_at"`
	ExitedAt  time.Time `json:"exited_at"`
	// GaveUp says why a car stopped trying a gate, if it did.
	GaveUp string `json:"gave_up,omitempty"`

	// AccessToken is the hold's bearer credential for the driver's own
	// calls; AccessCode the signed code the app showed.
	AccessToken string `json:"-"`
	AccessCode  string `json:"-"`
	// Cancel is the driver's cancellation, if they asked for one.
	Cancel *Cancel `json:"cancel,omitempty"`
	// Extension is the driver's extension, if they asked for one.
	Extension *Extension `json:"extension,omitempty"`
	// OverstaySession is the overstay's Checkout Session the driver paid
	// (OverstayPaidAt), and OverstayStatus what the app showed last.
	OverstaySession string    `json:"overstay_session,omitempty"`
	OverstayPaidAt  time.Time `json:"overstay_paid_at"`
	OverstayStatus  string    `json:"overstay_status,omitempty"`

	// Permit is what the operator did for a permit holder.
	Permit *PermitLife `json:"permit,omitempty"`
}

// PermitLife is a permit holder's permit as the operator made (and maybe
// revoked) it, and the presence reset asked for it.
type PermitLife struct {
	ID        string    `json:"id,omitempty"`
	Status    int       `json:"status"` // the answer to its creation
	RevokedAt time.Time `json:"revoked_at"`
	Revoke    int       `json:"revoke,omitempty"` // the answer to its revocation
	// Tried: the revoked holder came to the entry once the edge had the
	// revocation (and was connected).
	Tried bool   `json:"tried,omitempty"`
	Reset *Reset `json:"reset,omitempty"`
}

// Reset is an operator's presence reset and what the car met around it.
type Reset struct {
	DeniedBefore string    `json:"denied_before,omitempty"` // the entry's answer before the reset
	At           time.Time `json:"at"`
	Status       int       `json:"status"`
	Seq          int64     `json:"seq,omitempty"`
	Offline      bool      `json:"offline,omitempty"` // sent while the lot's uplink was cut
	Synced       time.Time `json:"synced"`            // when the edge was seen at or past Seq
	After        string    `json:"after,omitempty"`   // the entry's answer after it
}

// Cancel is one POST /v1/reservations/{id}/cancel and its answer.
type Cancel struct {
	At  time.Time     `json:"at"`
	RTT time.Duration `json:"rtt"`
	// InPolicy is what the driver expected: sent before starts_at minus
	// the lot's free cancellation.
	InPolicy bool   `json:"in_policy"`
	Status   int    `json:"status"` // 0: no answer
	Code     string `json:"code,omitempty"`
	Refund   int64  `json:"refund,omitempty"` // the answer's refund amount
	// CodeTried says the driver showed the cancelled booking's access code
	// at a gate afterwards.
	CodeTried bool `json:"code_tried,omitempty"`
}

// Extension is one POST /v1/reservations/{id}/extensions and what came of it.
type Extension struct {
	At        time.Time `json:"at"`
	EndsAt    time.Time `json:"ends_at"` // asked for
	Status    int       `json:"status"`
	Code      string    `json:"code,omitempty"`
	ID        string    `json:"id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	PaidAt    time.Time `json:"paid_at"`
	// Applied is when the app first showed the new ends_at.
	Applied time.Time `json:"applied"`
}

// Extended reports whether the booking's window moved.
func (e *Extension) Extended() bool { return e != nil && !e.Applied.IsZero() }

// Paid reports whether the driver's payment went through at Stripe.
func (j *Journey) Paid() bool { return !j.PaidAt.IsZero() }

// Entered reports whether the car got in.
func (j *Journey) Entered() bool { return !j.EnteredAt.IsZero() }

// Read is one plate read a simulated camera posted to an edge, and the
// answer.
type Read struct {
	Driver     int     `json:"driver"`
	LotID      string  `json:"lot_id"`
	GateID     string  `json:"gate_id"`
	Direction  string  `json:"direction"`
	Plate      string  `json:"plate"` // the car's real plate
	Sent       string  `json:"sent"`  // what the camera read
	Noise      string  `json:"noise,omitempty"`
	Confidence float64 `json:"confidence"`

	SentAt        time.Time     `json:"sent_at"`
	RTT           time.Duration `json:"rtt"`
	Decision      string        `json:"decision,omitempty"`
	Reason        string        `json:"reason,omitempty"`
	ReservationID string        `json:"reservation_id,omitempty"`
	EventID       string        `json:"event_id,omitempty"`
	DecidedInUs   int64         `json:"decided_in_us,omitempty"`
	// BarrierAt is the barrier relay's rising edge that answered an open,
	// from the edge's fake pins; zero when not measured.
	BarrierAt time.Time `json:"barrier_at"`
	// LoopAt is when the car drove onto the loop detector and TriggerAt
	// when the agent fired the camera trigger for it, on the first read of
	// a car at a gate; zero otherwise.
	LoopAt    time.Time `json:"loop_at"`
	TriggerAt time.Time `json:"trigger_at"`
	// Offline says the lot's uplink was cut when the read was sent.
	Offline bool `json:"offline,omitempty"`
	// Code says the driver showed an access code (POST /v1/access-codes)
	// instead of the camera reading the plate.
	Code bool   `json:"code,omitempty"`
	Err  string `json:"err,omitempty"`
}

// Open reports whether the gate opened.
func (r *Read) Open() bool { return r.Decision == "open" }

// Fault is something the simulator broke on purpose.
type Fault struct {
	At     time.Time `json:"at"`
	Until  time.Time `json:"until"`
	Kind   string    `json:"kind"` // a scenario.FaultKind: edge_cut, broker_restart, pg_restart, cloud_kill, …
	Target string    `json:"target"`
	Detail string    `json:"detail,omitempty"`
}

// Sample is the number of cars inside one lot at a moment, as the
// simulator counts them.
type Sample struct {
	At     time.Time `json:"at"`
	LotID  string    `json:"lot_id"`
	Inside int       `json:"inside"`
}

// Reservation is a row of the reservations table.
type Reservation struct {
	ID              string          `json:"id"`
	LotID           string          `json:"lot_id"`
	SpotID          int64           `json:"spot_id"`
	Plate           string          `json:"plate"`
	StartsAt        time.Time       `json:"starts_at"`
	EndsAt          time.Time       `json:"ends_at"`
	Status          protocol.Status `json:"status"`
	HoldExpiresAt   time.Time       `json:"hold_expires_at"`
	SessionID       string          `json:"session_id,omitempty"`
	PaymentIntentID string          `json:"payment_intent_id,omitempty"`
	RefundID        string          `json:"refund_id,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	ExtendsID       string          `json:"extends_id,omitempty"` // on an extension's own row
	// What the cloud's API shows of the reservation (read with the admin
	// token at the end; absent for extension rows, which are not shown).
	Overstay *Overstay `json:"overstay,omitempty"`
	Refunded int64     `json:"refunded,omitempty"` // refund.amount
}

// Overstay is a reservation's overstay as the API shows it.
type Overstay struct {
	Minutes   int    `json:"minutes"`
	Amount    int64  `json:"amount"`
	Status    string `json:"status"`
	SessionID string `json:"session_id,omitempty"`
}

// Change is one status change of one reservation: a row of the per-lot
// change log (outbox), or a silent change no edge hears of (a PENDING
// hold's life: the cloud's silent_changes, and a hold's own row), which
// comes after the log's change Seq. A lot's history is in (Seq, Silent)
// order (the cloud's lot_history).
type Change struct {
	LotID         string          `json:"lot_id"`
	Seq           int64           `json:"seq"`
	Silent        int64           `json:"silent,omitempty"` // 0 for the log's change; else its order after Seq
	ReservationID string          `json:"reservation_id"`
	Status        protocol.Status `json:"status"`
	CreatedAt     time.Time       `json:"created_at"`
	Op            string          `json:"op"`
	StartsAt      time.Time       `json:"starts_at"`
	EndsAt        time.Time       `json:"ends_at"`
}

// GateEvent is a row of the cloud's gate_events table.
type GateEvent struct {
	EventID       string    `json:"event_id"`
	LotID         string    `json:"lot_id"`
	GateID        string    `json:"gate_id"`
	Direction     string    `json:"direction"`
	Kind          string    `json:"kind"`
	Plate         string    `json:"plate"`
	Decision      string    `json:"decision"`
	Reason        string    `json:"reason"`
	ReservationID string    `json:"reservation_id,omitempty"`
	Offline       bool      `json:"offline,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
	ReceivedAt    time.Time `json:"received_at"`
	DecidedInUs   int64     `json:"decided_in_us"`
	Note          string    `json:"note,omitempty"`
}

// StripePayment is a Checkout Session at the Stripe stand-in.
type StripePayment struct {
	SessionID       string `json:"session_id"`
	ReservationID   string `json:"reservation_id"`
	Status          string `json:"status"`         // open, complete, expired
	PaymentStatus   string `json:"payment_status"` // paid, unpaid
	PaymentIntentID string `json:"payment_intent_id,omitempty"`
	Amount          int64  `json:"amount"`
}

// Paid reports whether the session took money.
func (p *StripePayment) Paid() bool { return p.PaymentStatus == "paid" }

// Refund is a refund at the Stripe stand-in.
type Refund struct {
	ID              string    `json:"id"`
	PaymentIntentID string    `json:"payment_intent_id"`
	Amount          int64     `json:"amount"`
	Created         time.Time `json:"created"`
}

// Webhook is one event the stand-in sent, with its delivery count.
type Webhook struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Created    time.Time `json:"created"`
	Deliveries int       `json:"deliveries"`
	Attempts   int       `json:"attempts"`
}

// EdgeState is what an edge reported about itself at the end of the run.
type EdgeState struct {
	LotID       string `json:"lot_id"`
	Online      bool   `json:"online"`
	SyncSeq     int64  `json:"sync_seq"`
	LotSeq      int64  `json:"lot_seq"`      // the cloud's last seq of the lot
	OutboxDepth int    `json:"outbox_depth"` // -1 when unknown
}

// SeqSample is an edge's applied reservation sequence number when the
// simulator looked: the edge's side of the cloud → edge sync.
type SeqSample struct {
	LotID string    `json:"lot_id"`
	At    time.Time `json:"at"`
	Seq   int64     `json:"seq"`
}

// Config is what the run was asked to do.
type Config struct {
	Scenario   string        `json:"scenario"`
	Seed       int64         `json:"seed"`
	Lots       int           `json:"lots"`
	Spots      int           `json:"spots"`
	Drivers    int           `json:"drivers"`
	Duration   time.Duration `json:"duration"`
	Load       bool          `json:"load,omitempty"`
	Rate       float64       `json:"rate,omitempty"` // drivers per second in load mode
	HoldTTL    time.Duration `json:"hold_ttl"`
	EarlyGrace time.Duration `json:"early_grace"`
	ExitGrace  time.Duration `json:"exit_grace"`
}

// Run is everything one simulation collected.
type Run struct {
	Config  Config    `json:"config"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`   // traffic stopped
	Settled time.Time `json:"settled"` // sources of truth read

	Lots      []Lot     `json:"lots"`
	Journeys  []Journey `json:"journeys"`
	Reads     []Read    `json:"reads"`
	Faults    []Fault   `json:"faults"`
	Occupancy []Sample  `json:"occupancy"`
	// EdgeSeqs samples each edge's applied sequence number through the
	// run, every EdgeSeqEvery.
	EdgeSeqs     []SeqSample   `json:"edge_seqs,omitempty"`
	EdgeSeqEvery time.Duration `json:"edge_seq_every,omitempty"`

	Reservations []Reservation   `json:"reservations"`
	Permits      []Permit        `json:"permits,omitempty"`
	Changes      []Change        `json:"changes"`
	GateEvents   []GateEvent     `json:"gate_events"`
	Payments     []StripePayment `json:"payments"`
	Refunds      []Refund        `json:"refunds"`
	Webhooks     []Webhook       `json:"webhooks"`
	Edges        []EdgeState     `json:"edges"`
}

// Permit is a permit as the cloud kept it.
type Permit struct {
	ID         string    `json:"id"`
	LotID      string    `json:"lot_id"`
	Plate      string    `json:"plate"`
	ValidFrom  time.Time `json:"valid_from"`
	ValidUntil time.Time `json:"valid_until"`
	CreatedAt  time.Time `json:"created_at"`
	RevokedAt  time.Time `json:"revoked_at"` // zero while live
	Seq        int64     `json:"seq"`
	RevokeSeq  int64     `json:"revoke_seq,omitempty"`
}
