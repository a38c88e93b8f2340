package booking

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"golang.org/x/text/currency"
)

// The input rules of DESIGN.md ("Input rules"), one copy for every endpoint
// that takes the same kind of value.
const (
	// MaxNameLen bounds a lot's name, in characters.
	MaxNameLen = 200
	// MaxSpotLabelLen bounds a spot's label, in characters.
	MaxSpotLabelLen = 32
	// MaxRate bounds hourly_rate.amount, in minor units.
	MaxRate = 1_000_000
	// MaxWindow is the longest window: a booking, a search, an
	// availability question.
	MaxWindow = 31 * 24 * time.Hour
	// MaxAdvance is how far ahead a window may start.
	MaxAdvance = 366 * 24 * time.Hour
)

// CheckText checks a name or label: 1 to maxLen characters of valid UTF-8,
// printable only. NUL and control characters would reach Postgres (which
// refuses NUL with a 500) or an operator's terminal (ANSI escapes).
func CheckText(field, s string, maxLen int) error {
	if strings.TrimSpace(s) == "" {
		return cloud.FieldError(field, "%s is required", field)
	}
	if !utf8.ValidString(s) {
		return cloud.FieldError(field, "%s must be valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return cloud.FieldError(field, "%s is longer than %d characters", field, maxLen)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return cloud.FieldError(field, "%s must hold printable characters only", field)
		}
	}
	return nil
}

// CheckRate checks an hourly rate and returns it with its currency in the
// canonical (upper-case ISO 4217) spelling.
func CheckRate(rate cloud.Money) (cloud.Money, error) {
	if rate.Amount < 0 || rate.Amount > MaxRate {
		return rate, cloud.FieldError("hourly_rate.amount", "hourly_rate.amount must be an integer from 0 to %d", MaxRate)
	}
	// ParseISO is case-sensitive about nothing we care for, but knows only
	// upper case for some codes: ask it about the upper-case spelling.
	u, err := currency.ParseISO(strings.ToUpper(rate.Currency))
	if err != nil || len(rate.Currency) != 3 {
		return rate, cloud.FieldError("hourly_rate.currency", "hourly_rate.currency must be an ISO 4217 code")
	}
	rate.Currency = u.String()
	return rate, nil
}

// CheckTimeZone checks an IANA time zone name. "Local" would be whatever
// zone the server runs in, which is no lot's.
func CheckTimeZone(tz string) error {
	if tz == "" || tz == "Local" {
		return cloud.FieldError("time_zone", "time_zone must be an IANA time zone, e.g. Europe/Berlin")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return cloud.FieldError("time_zone", "unknown time zone %q", tz)
	}
	return nil
}

// CheckWindow checks a window [start, end) at now: start before end, at
// most MaxWindow long, not over, and starting at most MaxAdvance ahead.
func CheckWindow(now, start, end time.Time) error {
	switch {
	case !start.Before(end):
		return cloud.FieldError("ends_at", "ends_at must be after starts_at")
	case end.Sub(start) > MaxWindow:
		return cloud.FieldError("ends_at", "a window may last at most 31 days")
	case !end.After(now):
		return cloud.FieldError("ends_at", "ends_at is in the past")
	case start.After(now.Add(MaxAdvance)):
		return cloud.FieldError("starts_at", "starts_at is more than 366 days ahead")
	}
	return nil
}

// LotID returns a lot id in its one canonical spelling (a lower-case UUID),
// or not_found for anything that is no UUID: no lot has such an id, and
// caches and limits must never be keyed by an arbitrary string.
func LotID(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", cloud.Errorf(cloud.ENotFound, "lot not found")
	}
	return u.String(), nil
}
