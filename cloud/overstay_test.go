package cloud_test

import (
	"testing"

	"github.com/parkgate/parkgate/cloud"
)

func TestOverstayPrice(t *testing.T) {
	for _, tc := range []struct {
		rate    int64
		minutes int
		want    int64
	}{{250, 1, 63}, {250, 15, 63}, {250, 16, 125}, {400, 60, 400}, {0, 100, 0}, {250, 0, 0}} {
		got, err := cloud.OverstayPrice(cloud.Money{Amount: tc.rate, Currency: "EUR"}, tc.minutes)
		if err != nil || got.Amount != tc.want {
			t.Errorf("%d for %d min = %v, %v; want %d", tc.rate, tc.minutes, got, err, tc.want)
		}
	}
	if _, err := cloud.OverstayPrice(cloud.Money{Amount: 1 << 62, Currency: "EUR"}, 1<<30); err == nil {
		t.Error("overflow priced")
	}
}
