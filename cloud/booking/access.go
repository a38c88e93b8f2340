package booking

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// AccessTokenPrefix starts every access token, so one found in a log or a
// support ticket is recognised for what it is (and secret scanners can).
const AccessTokenPrefix = "pgat_"

// NewAccessToken returns a fresh access token, 32 random bytes, and the
// SHA-256 the store keeps of it.
func NewAccessToken() (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("access token: %w", err)
	}
	token = AccessTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashAccessToken(token), nil
}

// HashAccessToken is what the store keeps of a token.
func HashAccessToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// HoldsAccessToken reports whether token is r's access token. The hashes
// are compared in constant time; a reservation made before tokens existed
// has none and matches nothing.
func HoldsAccessToken(r cloud.Reservation, token string) bool {
	if len(r.AccessTokenHash) == 0 || !strings.HasPrefix(token, AccessTokenPrefix) {
		return false
	}
	return subtle.ConstantTimeCompare(HashAccessToken(token), r.AccessTokenHash) == 1
}

// AccessCodes returns what makes a reservation's access code: the claim on
// it (id, lot, plate, window), signed by key, the cloud's signing key that
// the edges already trust for changes.
func AccessCodes(key ed25519.PrivateKey) func(cloud.Reservation) (string, error) {
	return func(r cloud.Reservation) (string, error) {
		code, err := protocol.AccessCode{ReservationID: r.ID, LotID: r.LotID, Plate: r.Plate,
			StartsAt: r.StartsAt, EndsAt: r.EndsAt}.Sign(key)
		if err != nil {
			return "", fmt.Errorf("access code of %s: %w", r.ID, err)
		}
		return code, nil
	}
}
