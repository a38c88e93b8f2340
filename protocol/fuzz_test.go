package protocol_test

import (
	"crypto/ed25519"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// FuzzReservationChange decodes a reservations-topic payload as the edge
// does (decode, validate, verify). A change that verifies must verify again
// after the JSON round trip the cloud's outbox and any relay put it through;
// a refused one must come out of Validate and Verify exactly as it went in.
func FuzzReservationChange(f *testing.F) {
	key := testKey(f, 1)
	keys := []ed25519.PublicKey{testKey(f, 9).Public().(ed25519.PublicKey), key.Public().(ed25519.PublicKey)}

	signed := func(mut func(*protocol.ReservationChange)) []byte {
		c := sampleChange()
		mut(&c)
		c.Sign(key)
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(signed(func(*protocol.ReservationChange) {}))
	f.Add(signed(func(c *protocol.ReservationChange) {
		c.Op, c.Reservation.Status = protocol.OpDelete, protocol.StatusCancelled
	}))
	f.Add(signed(func(c *protocol.ReservationChange) {
		c.Reservation.StartsAt = c.Reservation.StartsAt.In(time.FixedZone("", -(9*3600 + 30*60))).Add(123456789)
	}))
	f.Add(signed(func(c *protocol.ReservationChange) { c.Reservation.Plate = "MÜAB12" }))
	unsigned := sampleChange()
	b, _ := json.Marshal(unsigned)
	f.Add(b)
	f.Add([]byte(`{"v":1,"lot_id":"lot-1","seq":-1,"op":"upsert","sig":"AAAA"}`))
	f.Add([]byte(`{"v":1,"lot_id":"lot-1","seq":1,"op":"upsert","reservation":{"starts_at":"0000-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59.999999999+23:59"}}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, payload []byte) {
		var c protocol.ReservationChange
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		before := c
		verr := c.Validate()
		if verr == nil {
			verr = c.Verify(keys)
		}
		if verr != nil {
			if !reflect.DeepEqual(c, before) {
				t.Fatalf("refused change (%v) was modified:\n before %+v\n after  %+v", verr, before, c)
			}
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("verified change %s does not re-encode: %v", payload, err)
		}
		var back protocol.ReservationChange
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("verified change %s re-encoded as %s, which does not decode: %v", payload, b, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("verified change %s is invalid after a round trip (%s): %v", payload, b, err)
		}
		if err := back.Verify(keys); err != nil {
			t.Fatalf("verified change %s does not verify after a round trip (%s): %v", payload, b, err)
		}
	})
}
