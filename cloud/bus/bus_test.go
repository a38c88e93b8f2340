package bus_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := bus.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		failure int
		ceil    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{64, time.Second},
		{1 << 30, time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			if d := b.Delay(tt.failure); d < tt.ceil/2 || d > tt.ceil {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", tt.failure, d, tt.ceil/2, tt.ceil)
			}
		}
	}
	if d := (bus.Backoff{}).Delay(1); d < bus.DefaultBackoff.Min/2 || d > bus.DefaultBackoff.Min {
		t.Errorf("zero Backoff Delay(1) = %v, want about %v", d, bus.DefaultBackoff.Min)
	}
}

func TestMessageValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    bus.Message
		ok   bool
	}{
		{"Complete", bus.Message{ID: "evt_1", Key: "r1"}, true},
		{"NoID", bus.Message{Key: "r1"}, false},
		{"NoKey", bus.Message{ID: "evt_1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
