package cloud

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// Status is where a reservation is in its life. It is protocol's type, so the
// cloud and the edges share one vocabulary and one copy of its rules
// (Active, OpensGate).
type Status = protocol.Status

// Reservation statuses. Active ones hold their spot: the database refuses two
// active reservations of one spot whose windows overlap.
const (
	StatusPending   = protocol.StatusPending
	StatusConfirmed = protocol.StatusConfirmed
	StatusCheckedIn = protocol.StatusCheckedIn
	StatusCompleted = protocol.StatusCompleted
	StatusExpired   = protocol.StatusExpired
	StatusCancelled = protocol.StatusCancelled
	StatusRefunded  = protocol.StatusRefunded
)

// Money is an amount in the currency's minor unit (cents), as Stripe counts.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Lot is a car park that can be booked.
type Lot struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Latitude   float64   `json:"latitude"`
	Longitude  float64   `json:"longitude"`
	TimeZone   string    `json:"time_zone"`
	HourlyRate Money     `json:"hourly_rate"`
	Spots      []string  `json:"spots,omitempty"`
	TotalSpots int       `json:"total_spots"`
	CreatedAt  time.Time `json:"created_at"`
	// FreeCancellation: a confirmed booking may be cancelled with a full
	// refund until its starts_at minus this. ExitGrace: an exit this long
	// after ends_at is still on time.
	FreeCancellation Duration `json:"free_cancellation"`
	ExitGrace        Duration `json:"exit_grace"`
	// Closed: its operator closed it to new holds. DeniedAlert: its
	// gate.denied_repeatedly threshold. Shown by the operator API's lot
	// (httpapi), not in the 201 of its creation.
	Closed      bool        `json:"-"`
	DeniedAlert DeniedAlert `json:"-"`
}

// DefaultExitGrace is a lot's exit grace unless its operator sets one.
const DefaultExitGrace = 15 * time.Minute

// Duration is a time.Duration that JSON carries in Go's syntax ("24h0m0s"),
// as the operator API's contract says.
type Duration time.Duration

// MarshalJSON writes the duration as Go prints it.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration in Go's syntax ("90m", "0s").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"24h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Refund is money given back for a reservation; Status is "pending" until
// the payment provider has taken the request, then "succeeded".
type Refund struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

// Overstay is what an exit after ends_at plus the lot's exit grace owes:
// Minutes past ends_at, priced at the lot's rate per started 15 minutes.
// Status is "due" until its Checkout Session is paid, then "paid".
type Overstay struct {
	Minutes  int      `json:"minutes"`
	Amount   int64    `json:"amount"`
	Currency string   `json:"currency"`
	Status   string   `json:"status"`
	Payment  *Payment `json:"payment"`
}

// Overstay statuses.
const (
	OverstayDue  = "due"
	OverstayPaid = "paid"
)

// OverstayPrice is what minutes past ends_at cost at an hourly rate: a
// quarter of the rate per started 15 minutes, rounded up to the minor unit,
// overflow-checked as Price is.
func OverstayPrice(rate Money, minutes int) (Money, error) {
	if minutes <= 0 || rate.Amount < 0 {
		return Money{Currency: rate.Currency}, nil
	}
	quarters := (uint64(minutes) + 14) / 15
	hi, lo := bits.Mul64(uint64(rate.Amount), quarters)
	sum, carry := bits.Add64(lo, 3, 0)
	if hi != 0 || carry != 0 || sum/4 > math.MaxInt64 {
		return Money{}, fmt.Errorf("overstay of %d minutes at %d: too large to price", minutes, rate.Amount)
	}
	return Money{Amount: int64(sum / 4), Currency: rate.Currency}, nil
}

// Refund statuses.
const (
	RefundPending   = "pending"
	RefundSucceeded = "succeeded"
	RefundFailed    = "failed" // an operator's refund the provider refused; it counts for nothing
)

// Payment is how a reservation is paid for.
type Payment struct {
	Provider  string `json:"provider"`
	SessionID string `json:"session_id,omitempty"`
	URL       string `json:"url,omitempty"`
}

// Reservation is a plate's claim on one spot of a lot for a half-open window
// [StartsAt, EndsAt).
type Reservation struct {
	ID            string    `json:"id"`
	Status        Status    `json:"status"`
	LotID         string    `json:"lot_id"`
	SpotID        string    `json:"spot_id"`
	Plate         string    `json:"plate"`
	StartsAt      time.Time `json:"starts_at"`
	EndsAt        time.Time `json:"ends_at"`
	HoldExpiresAt time.Time `json:"hold_expires_at"`
	Price         Money     `json:"price"`
	Payment       *Payment  `json:"payment,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	Refund        *Refund   `json:"refund,omitempty"`
	Overstay      *Overstay `json:"overstay,omitempty"`
	// AccessToken is the driver's credential for this reservation, only
	// ever in the 201 of its hold; AccessCode the signed code a gate
	// accepts instead of the plate, shown only to the driver and admins.
	AccessToken string `json:"access_token,omitempty"`
	AccessCode  string `json:"access_code,omitempty"`

	// Internal bookkeeping, never shown to drivers.
	PaymentIntentID string `json:"-"`
	RefundID        string `json:"-"`
	AccessTokenHash []byte `json:"-"`
	// ExtendsID is set on an extension's own row: the reservation whose
	// window it extends. Such rows are the store's, never shown as
	// reservations.
	ExtendsID string `json:"-"`
}

// Overlaps is the overlap rule for half-open windows: [aStart, aEnd) and
// [bStart, bEnd) share an instant exactly when aStart < bEnd and aEnd > bStart.
// It is the same rule as Postgres' tstzrange && with the default '[)' bounds,
// which the exclusion constraint enforces; a test checks the two agree.
func Overlaps(aStart, aEnd, bStart, bEnd time.Time) bool {
	return aStart.Before(bEnd) && aEnd.After(bStart)
}

// Price is what a window costs at an hourly rate: per started minute, rounded
// up to the minor unit, so a driver never pays for more than the minute they
// booked and the lot never loses a fraction of a cent. An empty or negative
// window, a negative rate, or a price past int64 is an error, never a wrapped
// number.
func Price(rate Money, startsAt, endsAt time.Time) (Money, error) {
	d := endsAt.Sub(startsAt)
	if d <= 0 || rate.Amount < 0 {
		return Money{}, FieldError("ends_at", "ends_at must be after starts_at")
	}
	// time.Sub saturates at ~292 years: a longer window would be priced as
	// that, silently.
	if !startsAt.Add(d).Equal(endsAt) {
		return Money{}, FieldError("ends_at", "the window is too long to price")
	}
	minutes := uint64(d / time.Minute)
	if d%time.Minute != 0 {
		minutes++
	}
	hi, lo := bits.Mul64(uint64(rate.Amount), minutes)
	sum, carry := bits.Add64(lo, 59, 0)
	if hi != 0 || carry != 0 || sum/60 > math.MaxInt64 {
		return Money{}, FieldError("ends_at", "the window is too long to price")
	}
	return Money{Amount: int64(sum / 60), Currency: rate.Currency}, nil
}
