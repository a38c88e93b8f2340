package protocol

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrBadSignature is returned when no trusted key verifies a change or a
// gate event.
var ErrBadSignature = errors.New("protocol: bad signature")

// SigningBytes is the canonical form of a change that the signature covers.
// It is built field by field rather than from JSON so that a receiver does
// not depend on how its JSON library re-encodes times and floats: times are
// Unix nanoseconds, fields are separated by a byte no field may contain.
// That is the reservation form, unchanged since the first release so that
// every change signed before kinds existed still verifies; the other kinds
// have their own (kindSigningBytes, change.go).
func (c *ReservationChange) SigningBytes() []byte {
	if c.Kind != KindReservation {
		return c.kindSigningBytes()
	}
	r := c.Reservation
	var b strings.Builder
	b.Grow(160)
	b.WriteString("parkgate.reservation-change.v")
	b.WriteString(strconv.Itoa(c.V))
	for _, f := range []string{
		c.LotID,
		strconv.FormatInt(c.Seq, 10),
		string(c.Op),
		r.ID,
		r.Plate,
		strconv.FormatInt(r.StartsAt.UnixNano(), 10),
		strconv.FormatInt(r.EndsAt.UnixNano(), 10),
		string(r.Status),
	} {
		b.WriteByte(0)
		b.WriteString(f)
	}
	return []byte(b.String())
}

// Sign sets c.Sig to the standard-base64 ed25519 signature of SigningBytes.
func (c *ReservationChange) Sign(key ed25519.PrivateKey) {
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.SigningBytes()))
}

// Verify reports nil when any of keys signed c. Several keys are accepted so
// that the cloud's signing key can be rotated without stopping the gates.
func (c *ReservationChange) Verify(keys []ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	msg := c.SigningBytes()
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
			return nil
		}
	}
	return ErrBadSignature
}

// ParseSigningKey decodes PARKGATE_SIGNING_KEY: standard base64 of a 32-byte
// ed25519 seed.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("protocol: signing key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("protocol: signing key is %d bytes, want a %d-byte seed", len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKeys decodes PARKGATE_CLOUD_PUBLIC_KEYS: comma-separated standard
// base64 of 32-byte ed25519 public keys.
func ParsePublicKeys(s string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, err := ParsePublicKey(part)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("protocol: no public keys")
	}
	return keys, nil
}

// EncodePublicKey is the inverse of one entry of ParsePublicKeys.
func EncodePublicKey(k ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(k)
}

// SigningBytes is the canonical form of a gate event that the edge's
// signature covers: every field but Sig, in the style of a change's. Each
// field is written as its length, ':' and its bytes, because an event
// carries free text (Note) that may hold any byte, and a separator alone
// would let text move from one field into the next under the same
// signature. Times are Unix seconds and nanoseconds (UnixNano overflows
// outside 1678–2262); the confidence is its IEEE 754 bits, so the form does
// not depend on how a JSON library prints floats.
func (e *GateEvent) SigningBytes() []byte {
	var b strings.Builder
	b.Grow(256 + len(e.Note))
	b.WriteString("parkgate.gate-event.v")
	b.WriteString(strconv.Itoa(e.V))
	for _, f := range []string{
		e.EventID,
		e.Kind,
		e.LotID,
		e.GateID,
		e.Direction,
		e.Plate,
		strconv.FormatUint(math.Float64bits(e.Confidence), 16),
		e.Decision,
		e.Reason,
		e.ReservationID,
		strconv.FormatBool(e.Fuzzy),
		strconv.Itoa(e.OverstayMinutes),
		strconv.FormatBool(e.Offline),
		strconv.FormatInt(e.OccurredAt.Unix(), 10),
		strconv.Itoa(e.OccurredAt.Nanosecond()),
		strconv.FormatInt(e.DecidedInUs, 10),
		e.Note,
	} {
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
	}
	return []byte(b.String())
}

// Sign sets e.Sig to the standard-base64 ed25519 signature of SigningBytes.
func (e *GateEvent) Sign(key ed25519.PrivateKey) {
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, e.SigningBytes()))
}

// Verify reports nil when any of keys signed e: a lot may have several
// agents, each with its own key, and a replaced agent's key stays valid for
// the events it left in the broker.
func (e *GateEvent) Verify(keys []ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(e.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	msg := e.SigningBytes()
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
			return nil
		}
	}
	return ErrBadSignature
}

// ParsePublicKey decodes one public key as an edge registers it: standard
// base64 of 32 bytes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("protocol: public key: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("protocol: public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
