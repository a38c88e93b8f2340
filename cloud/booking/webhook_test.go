package booking

import (
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// TestDecodeEvent: the bus carries a cloud.PaymentEvent as JSON; a raw
// provider event recorded by the previous release is read with
// DecodeLegacy, and without it, or unreadable, is an error (the handler
// drops it).
func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	e := cloud.PaymentEvent{ID: "evt_1", Type: cloud.EventSessionCompleted, Created: time.Unix(1700000000, 0).UTC(),
		SessionID: "cs_1", ReservationID: "r-1", PaymentStatus: "paid", PaymentIntentID: "pi_1"}
	raw := []byte(`{"id":"evt_2","object":"event","type":"checkout.session.expired","created":1700000000,
		"data":{"object":{"id":"cs_2","object":"checkout.session","client_reference_id":"r-2"}}}`)
	legacy := func(p []byte) (cloud.PaymentEvent, error) {
		var w struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(p, &w); err != nil {
			return cloud.PaymentEvent{}, err
		}
		return cloud.PaymentEvent{ID: w.ID, Type: w.Type, SessionID: "cs_2", ReservationID: "r-2"}, nil
	}
	s := &Service{Log: slog.Default(), DecodeLegacy: legacy}

	t.Run("Current", func(t *testing.T) {
		m := EventMessage(e)
		if m.ID != "evt_1" || m.Key != "r-1" || m.Type != e.Type || !m.CreatedAt.Equal(e.Created) {
			t.Fatalf("message %+v", m)
		}
		got, err := s.decodeEvent(m.Payload)
		if err != nil || got != e {
			t.Fatalf("decode = %+v, %v; want %+v", got, err, e)
		}
	})
	t.Run("Legacy", func(t *testing.T) {
		got, err := s.decodeEvent(raw)
		if err != nil || got.ID != "evt_2" || got.ReservationID != "r-2" {
			t.Fatalf("decode = %+v, %v", got, err)
		}
	})
	t.Run("LegacyWithoutDecoder", func(t *testing.T) {
		if _, err := (&Service{}).decodeEvent(raw); err == nil {
			t.Fatal("a raw provider event decoded without DecodeLegacy")
		}
	})
	t.Run("Garbage", func(t *testing.T) {
		bad := &Service{DecodeLegacy: func([]byte) (cloud.PaymentEvent, error) { return cloud.PaymentEvent{}, errors.New("no") }}
		if _, err := bad.decodeEvent([]byte(`not json`)); err == nil {
			t.Fatal("garbage decoded")
		}
	})
}

// TestEventKey: one reservation's events share a key; without a
// reservation, the session's; without either, the event's own.
func TestEventKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		e    cloud.PaymentEvent
		want string
	}{
		{"Reservation", cloud.PaymentEvent{ID: "e", SessionID: "s", ReservationID: "r"}, "r"},
		{"Session", cloud.PaymentEvent{ID: "e", SessionID: "s"}, "s"},
		{"Event", cloud.PaymentEvent{ID: "e"}, "e"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := EventMessage(tt.e).Key; got != tt.want {
				t.Errorf("key %q, want %q", got, tt.want)
			}
		})
	}
}
