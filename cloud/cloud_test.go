package cloud_test

import (
	"math"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// TestPriceOverflow: a price past int64 is an error, not a wrapped (once,
// −640511940) number; nor is an empty or negative window priced.
func TestPriceOverflow(t *testing.T) {
	t.Parallel()
	start := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name       string
		rate       int64
		start, end time.Time
	}{
		{"years 1 to 9999", 250, start, end},
		{"int64 rate", math.MaxInt64, end, end.Add(time.Hour)},
		{"empty window", 250, end, end},
		{"negative window", 250, end, end.Add(-time.Microsecond)},
		{"negative rate", -1, end, end.Add(time.Hour)},
	} {
		if got, err := cloud.Price(cloud.Money{Amount: tt.rate, Currency: "EUR"}, tt.start, tt.end); err == nil {
			t.Errorf("%s: Price = %v, want an error", tt.name, got)
		}
	}
	// A microsecond is a started minute.
	got, err := cloud.Price(cloud.Money{Amount: 60, Currency: "EUR"}, end, end.Add(time.Microsecond))
	if err != nil || got.Amount != 1 {
		t.Errorf("1 µs at 60/h = %v, %v; want 1", got, err)
	}
}
