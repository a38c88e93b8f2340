package protocol_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
	"pgregory.net/rapid"
)

func TestNormalizePlate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "AB123C", want: "AB123C"},
		{in: "ab-123 c", want: "AB123C"},
		{in: " m.ab·12 ", want: "MAB12"},
		{in: "A", err: true},
		{in: "", err: true},
		{in: "- -", err: true},
		{in: "ABCDEFGHIJK", err: true},
		{in: "AB12Ü", want: "AB12U"},
		{in: "MÜ-AB 12", want: "MUAB12"},
		{in: "mü-ab 12", want: "MUAB12"},
		{in: "ÖÅÑ 1", want: "OAN1"},
		{in: "Ø-123", want: "O123"},
		{in: "ø-123", want: "O123"},
		{in: "U\u0308AB", want: "UAB"}, // Ü typed as U + combining diaeresis
		{in: "АВ123", want: "AB123"},   // Cyrillic А В
		{in: "авекмн", want: "ABEKMH"}, // lower-case Cyrillic
		{in: "ОРСТУХ 77", want: "OPCTYX77"},
		{in: "ЁЕ12", want: "EE12"},    // Ё decomposes to Е + diaeresis
		{in: "ЖК123", err: true},      // Ж has no Latin twin
		{in: "ÆB12", err: true},       // Æ is not a letter with a mark
		{in: "AB\u00a012", err: true}, // a no-break space is no separator we know
		{in: "１２AB", err: true},       // full-width digits are not folded
		{in: "ABCDEFGHIÜK", err: true},
		{in: "AB_12", err: true},
		{in: "AB12\x00", err: true},
	}
	for _, tt := range tests {
		got, err := protocol.NormalizePlate(tt.in)
		if tt.err {
			if !errors.Is(err, protocol.ErrInvalidPlate) {
				t.Errorf("NormalizePlate(%q) = %q, %v; want ErrInvalidPlate", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePlate(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestNormalizePlateProperties checks what the gate relies on: normalising is
// idempotent, its output is only A-Z0-9 within the length bounds, and
// separators and case never change identity.
func TestNormalizePlateProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.String().Draw(t, "s")
		n, err := protocol.NormalizePlate(s)
		if err != nil {
			return
		}
		if len(n) < protocol.MinPlateLen || len(n) > protocol.MaxPlateLen {
			t.Fatalf("length %d out of bounds: %q", len(n), n)
		}
		for _, r := range n {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("bad rune %q in %q", r, n)
			}
		}
		again, err := protocol.NormalizePlate(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q, %v", n, again, err)
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		plate := rapid.StringMatching(`[A-Z0-9]{2,10}`).Draw(t, "plate")
		var b strings.Builder
		for _, r := range plate {
			if rapid.Bool().Draw(t, "lower") {
				r = r - 'A' + 'a'
				if r < 'a' || r > 'z' {
					r = r + 'A' - 'a'
				}
			}
			b.WriteRune(r)
			if rapid.IntRange(0, 4).Draw(t, "sep") == 0 {
				b.WriteString(rapid.SampledFrom([]string{" ", "-", ".", "·"}).Draw(t, "s"))
			}
		}
		got, err := protocol.NormalizePlate(b.String())
		if err != nil || got != plate {
			t.Fatalf("NormalizePlate(%q) = %q, %v; want %q", b.String(), got, err, plate)
		}
	})
}

func TestFoldPlate(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{
		{"OB5", "085"}, {"D0Q", "000"}, {"ISZ", "152"}, {"AB12", "A812"},
	} {
		if got := protocol.FoldPlate(pair[0]); got != pair[1] {
			t.Errorf("FoldPlate(%q) = %q, want %q", pair[0], got, pair[1])
		}
	}
	if protocol.FoldPlate("AB0123") != protocol.FoldPlate("A8O1Z3") {
		t.Errorf("look-alike plates fold differently")
	}
}

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s)
}

func sampleChange() protocol.ReservationChange {
	return protocol.ReservationChange{
		V: protocol.Version, LotID: "lot-1", Seq: 7, Op: protocol.OpUpsert,
		Reservation: protocol.Reservation{
			ID: "r-1", Plate: "AB123C", Status: protocol.StatusConfirmed,
			StartsAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
			EndsAt:   time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		},
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	key, other := testKey(t, 1), testKey(t, 2)
	pub := key.Public().(ed25519.PublicKey)
	otherPub := other.Public().(ed25519.PublicKey)

	c := sampleChange()
	c.Sign(key)
	if err := c.Verify([]ed25519.PublicKey{otherPub, pub}); err != nil {
		t.Fatalf("verify with rotated key set: %v", err)
	}
	if err := c.Verify([]ed25519.PublicKey{otherPub}); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("verify with wrong key: %v", err)
	}

	// The signature survives a JSON round trip, including a time zone change
	// on the way, because it covers instants, not their text.
	b, _ := json.Marshal(c)
	var back protocol.ReservationChange
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	back.Reservation.StartsAt = back.Reservation.StartsAt.In(time.FixedZone("X", 3600))
	if err := back.Verify([]ed25519.PublicKey{pub}); err != nil {
		t.Fatalf("verify after round trip: %v", err)
	}

	tamper := []func(*protocol.ReservationChange){
		func(c *protocol.ReservationChange) { c.Seq++ },
		func(c *protocol.ReservationChange) { c.LotID = "lot-2" },
		func(c *protocol.ReservationChange) { c.Op = protocol.OpDelete },
		func(c *protocol.ReservationChange) { c.Reservation.Plate = "XX999" },
		func(c *protocol.ReservationChange) { c.Reservation.EndsAt = c.Reservation.EndsAt.Add(time.Hour) },
		func(c *protocol.ReservationChange) { c.Reservation.Status = protocol.StatusCheckedIn },
		func(c *protocol.ReservationChange) { c.Sig = "" },
		func(c *protocol.ReservationChange) { c.Sig = "!!" },
	}
	for i, f := range tamper {
		m := back
		f(&m)
		if err := m.Verify([]ed25519.PublicKey{pub}); !errors.Is(err, protocol.ErrBadSignature) {
			t.Errorf("tamper %d verified: %v", i, err)
		}
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	key := testKey(t, 3)
	seed := "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
	got, err := protocol.ParseSigningKey(seed)
	if err != nil || !got.Equal(key) {
		t.Fatalf("ParseSigningKey: %v", err)
	}
	pub := protocol.EncodePublicKey(key.Public().(ed25519.PublicKey))
	keys, err := protocol.ParsePublicKeys(" " + pub + ", " + pub)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeys: %v %d", err, len(keys))
	}
	for _, bad := range []string{"", "not base64", "AAAA"} {
		if _, err := protocol.ParsePublicKeys(bad); err == nil {
			t.Errorf("ParsePublicKeys(%q) accepted", bad)
		}
		if _, err := protocol.ParseSigningKey(bad); err == nil {
			t.Errorf("ParseSigningKey(%q) accepted", bad)
		}
	}
}

func TestParseGateTopic(t *testing.T) {
	t.Parallel()
	lot, gate, kind, err := protocol.ParseGateTopic(protocol.GateEventsTopic("l1", "entry-1"))
	if err != nil || lot != "l1" || gate != "entry-1" || kind != "events" {
		t.Fatalf("got %q %q %q %v", lot, gate, kind, err)
	}
	for _, bad := range []string{
		"parkgate/v1/lots/l1/reservations", "parkgate/v2/lots/l1/gates/g/events",
		"parkgate/v1/lots//gates/g/events", "parkgate/v1/lots/l1/gates/g/other",
	} {
		if _, _, _, err := protocol.ParseGateTopic(bad); err == nil {
			t.Errorf("ParseGateTopic(%q) accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	c := sampleChange()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.V = 2
	if err := c.Validate(); err == nil {
		t.Error("version 2 accepted")
	}
	e := protocol.GateEvent{V: 1, EventID: "e", LotID: "l", GateID: "g", Direction: "entry",
		Decision: "open", OccurredAt: time.Now()}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	e.Direction = "sideways"
	if err := e.Validate(); err == nil {
		t.Error("bad direction accepted")
	}
}

func ExampleReservationsTopic() {
	fmt.Println(protocol.ReservationsTopic("7c9e"))
	fmt.Println(protocol.GateEventsTopic("7c9e", "entry-1"))
	fmt.Println(protocol.SharedGateEventsFilter("parkcloud"))
	// Output:
	// parkgate/v1/lots/7c9e/reservations
	// parkgate/v1/lots/7c9e/gates/entry-1/events
	// $share/parkcloud/parkgate/v1/lots/+/gates/+/events
}

func ExampleNormalizePlate() {
	p, _ := protocol.NormalizePlate("m-ab 123")
	fmt.Println(p, protocol.FoldPlate("OB5"))
	// Output: MAB123 085
}

func TestOpFor(t *testing.T) {
	t.Parallel()
	for status, want := range map[protocol.Status]protocol.Op{
		protocol.StatusPending: protocol.OpDelete, protocol.StatusConfirmed: protocol.OpUpsert,
		protocol.StatusCheckedIn: protocol.OpUpsert, protocol.StatusCompleted: protocol.OpDelete,
		protocol.StatusExpired: protocol.OpDelete, protocol.StatusRefunded: protocol.OpDelete,
		protocol.StatusCancelled: protocol.OpDelete, "": protocol.OpDelete,
	} {
		if got := protocol.OpFor(status); got != want {
			t.Errorf("OpFor(%q) = %q, want %q", status, got, want)
		}
	}
}

func TestStatusRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status            protocol.Status
		active, opensGate bool
	}{
		{protocol.StatusPending, true, false},
		{protocol.StatusConfirmed, true, true},
		{protocol.StatusCheckedIn, true, true},
		{protocol.StatusCompleted, false, false},
		{protocol.StatusExpired, false, false},
		{protocol.StatusCancelled, false, false},
		{protocol.StatusRefunded, false, false},
	}
	if len(tests) != len(protocol.Statuses()) {
		t.Fatalf("%d statuses tested, protocol has %d", len(tests), len(protocol.Statuses()))
	}
	for i, tt := range tests {
		if got := protocol.Statuses()[i]; got != tt.status {
			t.Errorf("Statuses()[%d] = %s, want %s", i, got, tt.status)
		}
		if got := tt.status.Active(); got != tt.active {
			t.Errorf("%s.Active() = %t, want %t", tt.status, got, tt.active)
		}
		if got := tt.status.OpensGate(); got != tt.opensGate {
			t.Errorf("%s.OpensGate() = %t, want %t", tt.status, got, tt.opensGate)
		}
	}
}

func FuzzNormalizePlate(f *testing.F) {
	for _, s := range []string{"AB-123 C", "m.ab·12", "", "ÄÖ", "0123456789AB", "MÜ-AB 12", "АВ123", "Ø\u0301x", "ЖЁ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := protocol.NormalizePlate(s)
		if err != nil {
			return
		}
		if again, err := protocol.NormalizePlate(n); err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if f := protocol.FoldPlate(n); len(f) != len(n) {
			t.Fatalf("fold changed length: %q -> %q", n, f)
		}
	})
}

// TestNormalizePlateBookedEqualsRead is the rule the gate depends on: what a
// driver books with diacritics or Cyrillic letters and what a Latin-only
// camera reads are one plate.
func TestNormalizePlateBookedEqualsRead(t *testing.T) {
	t.Parallel()
	for booked, read := range map[string]string{"MÜ-AB 12": "MUAB12", "АВ123": "AB123", "ØSTERÅ 1": "OSTERA1", "PEÑA 7": "PENA7"} {
		b, errB := protocol.NormalizePlate(booked)
		r, errR := protocol.NormalizePlate(read)
		if errB != nil || errR != nil || b != r {
			t.Errorf("booked %q -> %q (%v), read %q -> %q (%v): want one plate", booked, b, errB, read, r, errR)
		}
	}
}

// TestNormalizePlateASCIIAllocs keeps the camera's path cheap: a pure ASCII
// read allocates only its result.
func TestNormalizePlateASCIIAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = protocol.NormalizePlate("ab-123 c") }); n > 1 {
		t.Errorf("NormalizePlate on ASCII allocates %v times, want at most 1", n)
	}
}

func BenchmarkNormalizePlate(b *testing.B) {
	for _, in := range []string{"AB-123 C", "MÜ-AB 12", "АВ123"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.NormalizePlate(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
