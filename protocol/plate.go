package protocol

import (
	"errors"
	"strings"
)

// Plate length bounds after normalisation. Real plates run from 2 characters
// (vanity and diplomatic plates) to about 10.
const (
	MinPlateLen = 2
	MaxPlateLen = 10
)

// ErrInvalidPlate is returned for input that is not a plate after
// normalisation: empty, too long, or with characters no plate has.
var ErrInvalidPlate = errors.New("protocol: invalid plate")

// NormalizePlate turns what a driver typed or a camera read into the one form
// both sides store and compare: upper case, separators (space, hyphen, dot,
// middle dot) removed, only A–Z and 0–9 allowed. "ab-123 c" and "AB123C" are
// the same plate.
func NormalizePlate(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r == ' ' || r == '-' || r == '.' || r == '·' || r == '\t':
			// separators vary by country and by camera; they carry no identity
		default:
			return "", ErrInvalidPlate
		}
		if b.Len() > MaxPlateLen {
			return "", ErrInvalidPlate
		}
	}
	if b.Len() < MinPlateLen {
		return "", ErrInvalidPlate
	}
	return b.String(), nil
}

// lookalike maps each character a camera commonly confuses to one
// representative, so two plates that differ only in such characters fold to
// the same key.
var lookalike = [256]byte{
	'O': '0', 'D': '0', 'Q': '0',
	'I': '1',
	'B': '8',
	'S': '5',
	'Z': '2',
}

// FoldPlate maps a normalised plate to its look-alike key: O, D and Q become
// 0, I becomes 1, B becomes 8, S becomes 5, Z becomes 2. Edges index
// reservations by this key to find candidates for a noisy read; whether a
// candidate may open the gate is their decision, not this function's.
func FoldPlate(plate string) string {
	b := []byte(plate)
	for i, c := range b {
		if m := lookalike[c]; m != 0 {
			b[i] = m
		}
	}
	return string(b)
}
