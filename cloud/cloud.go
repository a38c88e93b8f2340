package cloud

import (
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
}

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

	// Internal payment bookkeeping, never shown to drivers.
	PaymentIntentID string `json:"-"`
	RefundID        string `json:"-"`
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
