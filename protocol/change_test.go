package protocol_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// releasedChange is sampleChange as the release before change kinds
// encoded and signed it (key seed 1), byte for byte.
const releasedChange = `{"v":1,"lot_id":"lot-1","seq":7,"op":"upsert","reservation":{"id":"r-1","plate":"AB123C","starts_at":"2026-11-25T10:00:00Z","ends_at":"2026-11-25T12:00:00Z","status":"CONFIRMED"},"sig":"J10ThiJUTmPmm8RU+ANN4YVjesFb0Log5amruJ/9xnnT7Vm8DKEImWu2Ik/HykXdYa/Mesk7UkRxO4o8bf3bDg=="}`

// TestReservationChangeUnchanged: a reservation change is encoded and
// signed exactly as before kinds existed, so old messages still verify and
// old agents still read new reservation changes.
func TestReservationChangeUnchanged(t *testing.T) {
	t.Parallel()
	key := testKey(t, 1)
	c := sampleChange()
	c.Sign(key)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != releasedChange {
		t.Fatalf("reservation change encodes as\n %s\nwant the released\n %s", b, releasedChange)
	}
	var old protocol.ReservationChange
	if err := json.Unmarshal([]byte(releasedChange), &old); err != nil {
		t.Fatal(err)
	}
	if err := old.Validate(); err != nil {
		t.Fatalf("released change invalid: %v", err)
	}
	if err := old.Verify([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatalf("released change does not verify: %v", err)
	}
}

func samplePermit() protocol.Permit {
	return protocol.Permit{ID: "p-1", Plate: "MUAB12",
		ValidFrom:  time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// TestKindChangeSignVerify: a permit or reset change survives the JSON
// round trip the outbox and the catch-up put it through, and any edit of
// what it says, a Data entry added or removed included, breaks it.
func TestKindChangeSignVerify(t *testing.T) {
	t.Parallel()
	key := testKey(t, 1)
	pub := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	issued := time.Date(2026, 12, 5, 9, 30, 0, 123456789, time.FixedZone("", 3600))
	for name, c := range map[string]protocol.ReservationChange{
		"PermitUpsert": protocol.PermitChange("lot-1", 8, protocol.OpUpsert, samplePermit()),
		"PermitDelete": protocol.PermitChange("lot-1", 9, protocol.OpDelete, samplePermit()),
		"Reset":        protocol.PresenceResetChange("lot-1", 10, protocol.PresenceReset{ID: "x-1", Plate: "AB123", IssuedAt: issued}),
		"GateOpen": protocol.GateOpenChange("lot-1", 11, protocol.GateOpen{ID: "o-1", GateID: "entry-1", Reason: "intercom: ticket machine broken",
			IssuedAt: issued, NotAfter: issued.Add(30 * time.Second)}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c.Sign(key)
			b, _ := json.Marshal(c)
			var back protocol.ReservationChange
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if err := back.Validate(); err != nil {
				t.Fatalf("validate %s: %v", b, err)
			}
			if err := back.Verify(pub); err != nil {
				t.Fatalf("verify after round trip: %v", err)
			}
			var raw map[string]json.RawMessage
			_ = json.Unmarshal(b, &raw)
			if _, ok := raw["reservation"]; ok {
				t.Errorf("a %s change carries a reservation: %s", c.Kind, b)
			}
			tamper := []func(*protocol.ReservationChange){
				func(c *protocol.ReservationChange) { c.Seq++ },
				func(c *protocol.ReservationChange) { c.LotID = "lot-2" },
				func(c *protocol.ReservationChange) { c.Kind = "other" },
				func(c *protocol.ReservationChange) { c.Kind = protocol.KindReservation },
				func(c *protocol.ReservationChange) { c.Op = "something" },
				func(c *protocol.ReservationChange) { c.Data[protocol.DataPlate] = "XX999" },
				func(c *protocol.ReservationChange) { c.Data["extra"] = "" },
				func(c *protocol.ReservationChange) { delete(c.Data, protocol.DataID) },
				// Text may not slide from one entry into the next.
				func(c *protocol.ReservationChange) {
					k := protocol.DataPlate
					if _, ok := c.Data[k]; !ok {
						k = protocol.DataGateID
					}
					c.Data[protocol.DataID] += "\x001:" + c.Data[k][:1]
					c.Data[k] = c.Data[k][1:]
				},
			}
			for i, f := range tamper {
				var m protocol.ReservationChange
				_ = json.Unmarshal(b, &m)
				f(&m)
				if err := m.Verify(pub); !errors.Is(err, protocol.ErrBadSignature) {
					t.Errorf("tamper %d verified: %v", i, err)
				}
			}
		})
	}
}

// TestUnknownKind: a change of a kind (or op) this build does not know
// verifies — so a receiver can trust its seq — and is then refused by
// Validate as ErrUnknownChange, which is the receiver's cue to skip it and
// carry on rather than stop the stream.
func TestUnknownKind(t *testing.T) {
	t.Parallel()
	key := testKey(t, 1)
	pub := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	future := []byte(`{"v":1,"lot_id":"lot-1","seq":11,"kind":"tariff","op":"set","data":{"amount":"250","currency":"EUR"},"later_field":{"x":1}}`)
	var c protocol.ReservationChange
	if err := json.Unmarshal(future, &c); err != nil {
		t.Fatal(err)
	}
	c.Sign(key)
	if err := c.CheckEnvelope(); err != nil {
		t.Fatalf("envelope: %v", err)
	}
	if err := c.Verify(pub); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := c.Validate(); !errors.Is(err, protocol.ErrUnknownChange) {
		t.Fatalf("validate an unknown kind: %v, want ErrUnknownChange", err)
	}
	bad := []protocol.ReservationChange{
		protocol.PermitChange("lot-1", 1, "suspend", samplePermit()),
		protocol.PresenceResetChange("lot-1", 1, protocol.PresenceReset{ID: "x", IssuedAt: time.Now()}),
		protocol.GateOpenChange("lot-1", 1, protocol.GateOpen{ID: "o", GateID: "entry-1", IssuedAt: time.Now(), NotAfter: time.Now().Add(time.Second)}),
		protocol.GateOpenChange("lot-1", 1, protocol.GateOpen{ID: "o", GateID: "entry-1", Reason: "r", IssuedAt: time.Now(), NotAfter: time.Now().Add(-time.Second)}),
		protocol.GateOpenChange("lot-1", 1, protocol.GateOpen{ID: "o", Reason: "r", IssuedAt: time.Now(), NotAfter: time.Now().Add(time.Second)}),
		{V: 1, LotID: "lot-1", Seq: 1, Kind: protocol.KindPermit, Op: protocol.OpUpsert, Data: map[string]string{"id": "p"}},
	}
	for i, c := range bad {
		if err := c.Validate(); !errors.Is(err, protocol.ErrUnknownChange) {
			t.Errorf("bad %d: validate %v, want ErrUnknownChange", i, err)
		}
	}
	// The envelope is refused as before, whatever the kind.
	c.Seq = 0
	if err := c.Validate(); err == nil || errors.Is(err, protocol.ErrUnknownChange) {
		t.Errorf("seq 0: %v, want an envelope error", err)
	}
}

func ExamplePermitChange() {
	c := protocol.PermitChange("7c9e", 42, protocol.OpUpsert, protocol.Permit{
		ID: "b1f0", Plate: "MUAB12",
		ValidFrom:  time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	b, _ := protocol.Encode(c)
	fmt.Println(string(b))
	// Output:
	// {"v":1,"lot_id":"7c9e","seq":42,"kind":"permit","op":"upsert","data":{"id":"b1f0","plate":"MUAB12","valid_from":"2026-12-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z"}}
}
