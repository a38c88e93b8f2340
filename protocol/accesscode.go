package protocol

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// ErrInvalidAccessCode is returned for an access code that is malformed or
// that no trusted key signed.
var ErrInvalidAccessCode = errors.New("protocol: invalid access code")

// AccessCode is what a driver shows at a gate whose camera cannot read the
// plate (a QR code): the reservation it is for, signed by the cloud's key,
// so an edge that trusts that key for changes can check it offline.
type AccessCode struct {
	ReservationID string // a UUID
	LotID         string // a UUID
	Plate         string // normalised
	StartsAt      time.Time
	EndsAt        time.Time
}

// The code's layout, before base64url (no padding):
//
//	version 1 | reservation id 16 | lot id 16 | starts_at 8 | ends_at 8 |
//	plate length 1 | plate | ed25519 signature 64
//
// Binary rather than JSON keeps a QR code small (about 170 characters for a
// 10-character plate) and leaves one way to read it. Times are Unix
// microseconds, big-endian, as Postgres keeps them. The signature covers
// accessCodeDomain and every byte before it: the domain keeps a code's
// signature from ever meaning anything else the same key signs.
const (
	accessCodeVersion = 1
	accessCodeDomain  = "parkgate.access-code.v1\x00"
	accessCodeFixed   = 1 + 16 + 16 + 8 + 8 + 1
	maxCodePlate      = 10
	// MaxAccessCodeLen bounds an encoded code, for callers that limit input.
	MaxAccessCodeLen = (accessCodeFixed + maxCodePlate + ed25519.SignatureSize + 2) * 4 / 3
)

// Sign returns the code, encoded and signed by key. The ids must be UUIDs
// and the plate a normalised one, as the cloud stores them.
func (c AccessCode) Sign(key ed25519.PrivateKey) (string, error) {
	rid, err := parseUUID(c.ReservationID)
	if err != nil {
		return "", err
	}
	lid, err := parseUUID(c.LotID)
	if err != nil {
		return "", err
	}
	if len(c.Plate) == 0 || len(c.Plate) > maxCodePlate {
		return "", ErrInvalidAccessCode
	}
	b := make([]byte, 0, accessCodeFixed+len(c.Plate)+ed25519.SignatureSize)
	b = append(b, accessCodeVersion)
	b = append(b, rid[:]...)
	b = append(b, lid[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.StartsAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.EndsAt.UnixMicro()))
	b = append(b, byte(len(c.Plate)))
	b = append(b, c.Plate...)
	b = append(b, ed25519.Sign(key, append([]byte(accessCodeDomain), b...))...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseAccessCode decodes a code and checks that one of keys signed it;
// ErrInvalidAccessCode for anything else. It does not judge the code's
// window or lot: that is the gate's decision.
func ParseAccessCode(s string, keys []ed25519.PublicKey) (AccessCode, error) {
	if len(s) > MaxAccessCodeLen {
		return AccessCode{}, ErrInvalidAccessCode
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s) // one spelling per code
	if err != nil || len(b) < accessCodeFixed+ed25519.SignatureSize || b[0] != accessCodeVersion {
		return AccessCode{}, ErrInvalidAccessCode
	}
	n := int(b[accessCodeFixed-1])
	if n == 0 || n > maxCodePlate || len(b) != accessCodeFixed+n+ed25519.SignatureSize {
		return AccessCode{}, ErrInvalidAccessCode
	}
	body, sig := b[:accessCodeFixed+n], b[accessCodeFixed+n:]
	msg := append([]byte(accessCodeDomain), body...)
	ok := false
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
			ok = true
			break
		}
	}
	if !ok {
		return AccessCode{}, ErrInvalidAccessCode
	}
	return AccessCode{
		ReservationID: formatUUID(body[1:17]),
		LotID:         formatUUID(body[17:33]),
		StartsAt:      time.UnixMicro(int64(binary.BigEndian.Uint64(body[33:41]))).UTC(),
		EndsAt:        time.UnixMicro(int64(binary.BigEndian.Uint64(body[41:49]))).UTC(),
		Plate:         string(body[accessCodeFixed : accessCodeFixed+n]),
	}, nil
}

// parseUUID reads a UUID in its canonical form (any case): protocol
// imports only the standard library.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, ErrInvalidAccessCode
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, ErrInvalidAccessCode
		}
		u[j] = hi<<4 | lo
		i, j = i+2, j+1
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func formatUUID(b []byte) string {
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[c>>4], hexd[c&15])
	}
	return string(out)
}
