package protocol_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

func sampleEvent() protocol.GateEvent {
	return protocol.GateEvent{
		V: protocol.Version, EventID: "ev-1", Kind: protocol.KindDecision, LotID: "lot-1", GateID: "entry-1",
		Direction: protocol.DirectionEntry, Plate: "AB123C", Confidence: 0.93, Decision: protocol.DecisionOpen,
		Reason: protocol.ReasonValid, ReservationID: "r-1", Fuzzy: true, OverstayMinutes: 3, Offline: true,
		OccurredAt:  time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC),
		DecidedInUs: 42, Note: "barrier stuck",
	}
}

func TestGateEventSignVerify(t *testing.T) {
	t.Parallel()
	key, other := testKey(t, 4), testKey(t, 5)
	pub := key.Public().(ed25519.PublicKey)
	otherPub := other.Public().(ed25519.PublicKey)

	e := sampleEvent()
	e.Sign(key)
	if err := e.Verify([]ed25519.PublicKey{otherPub, pub}); err != nil {
		t.Fatalf("verify with the lot's keys: %v", err)
	}
	if err := e.Verify([]ed25519.PublicKey{otherPub}); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("verify with another key: %v", err)
	}
	if err := e.Verify(nil); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("verify with no keys: %v", err)
	}

	// As the cloud receives it: through JSON, its time in another zone.
	b, _ := json.Marshal(e)
	var back protocol.GateEvent
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	back.OccurredAt = back.OccurredAt.In(time.FixedZone("X", 3600))
	if err := back.Verify([]ed25519.PublicKey{pub}); err != nil {
		t.Fatalf("verify after round trip: %v", err)
	}

	t.Run("EveryFieldCovered", func(t *testing.T) {
		// Walks the struct, so a field added later is covered or fails here.
		v := reflect.ValueOf(back)
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if name == "Sig" {
				continue
			}
			m := back
			f := reflect.ValueOf(&m).Elem().Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString(f.String() + "x")
			case reflect.Int, reflect.Int64:
				f.SetInt(f.Int() + 1)
			case reflect.Float64:
				f.SetFloat(f.Float() + 0.01)
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Struct: // time.Time
				f.Set(reflect.ValueOf(m.OccurredAt.Add(time.Nanosecond)))
			default:
				t.Fatalf("field %s: kind %s not covered by this test", name, f.Kind())
			}
			if err := m.Verify([]ed25519.PublicKey{pub}); !errors.Is(err, protocol.ErrBadSignature) {
				t.Errorf("changed %s still verifies: %v", name, err)
			}
		}
	})

	t.Run("TextCannotMoveBetweenFields", func(t *testing.T) {
		a, b := sampleEvent(), sampleEvent()
		a.Reason, a.ReservationID = "valid\x00r", "-1"
		b.Reason, b.ReservationID = "valid", "r-1\x00"
		if string(a.SigningBytes()) == string(b.SigningBytes()) {
			t.Fatal("two different events share a canonical form")
		}
	})

	t.Run("BadSig", func(t *testing.T) {
		for _, sig := range []string{"", "!!", "AAAA"} {
			m := back
			m.Sig = sig
			if err := m.Verify([]ed25519.PublicKey{pub}); !errors.Is(err, protocol.ErrBadSignature) {
				t.Errorf("sig %q verified: %v", sig, err)
			}
		}
	})
}

// FuzzGateEventVerify: whatever arrives, decoding and verifying never
// panics, and a message that verified verifies again after the round trip
// the cloud would store it through.
func FuzzGateEventVerify(f *testing.F) {
	key := testKey(f, 6)
	pub := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	e := sampleEvent()
	e.Sign(key)
	good, _ := json.Marshal(e)
	f.Add(good)
	f.Add([]byte(`{"v":1,"event_id":"x","sig":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m protocol.GateEvent
		if json.Unmarshal(b, &m) != nil {
			return
		}
		if m.Verify(pub) != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back protocol.GateEvent
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Verify(pub); err != nil {
			t.Fatalf("verified once, not after a round trip: %v", err)
		}
	})
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	pub := testKey(t, 7).Public().(ed25519.PublicKey)
	got, err := protocol.ParsePublicKey(protocol.EncodePublicKey(pub))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParsePublicKey = %x, %v", got, err)
	}
	for _, bad := range []string{"", "!!", "AAAA", protocol.EncodePublicKey(pub)[:40]} {
		if _, err := protocol.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
}
