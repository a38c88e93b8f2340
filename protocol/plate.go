package protocol

import (
	"errors"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
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
// both sides store and compare: upper case, separators (space, tab, hyphen,
// dot, middle dot) removed, diacritics folded to the base letter (Ü→U, Å→A,
// Ñ→N, and Ø→O, which does not decompose), Cyrillic letters that have a
// Latin twin on plates (А В Е К М Н О Р С Т У Х) read as that twin, and then
// 2–10 characters of A–Z and 0–9. "mü-ab 12" and "MUAB12" are the same
// plate: a German driver books with the umlaut that a camera does not read.
func NormalizePlate(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return normalizeUnicode(s)
		}
	}
	return normalizeASCII(s)
}

// normalizeASCII is the path almost every camera read takes: no transformer,
// one allocation for the result.
func normalizeASCII(s string) (string, error) {
	var buf [MaxPlateLen]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c == ' ' || c == '-' || c == '.' || c == '\t':
			// separators vary by country and by camera; they carry no identity
			continue
		default:
			return "", ErrInvalidPlate
		}
		if n == MaxPlateLen {
			return "", ErrInvalidPlate
		}
		buf[n] = c
		n++
	}
	if n < MinPlateLen {
		return "", ErrInvalidPlate
	}
	return string(buf[:n]), nil
}

// foldPool holds the diacritic-stripping transformers: a transform.Chain
// keeps state between calls, so each goroutine needs its own, and making one
// per read would cost more than the rest of the normalisation.
var foldPool = sync.Pool{New: func() any {
	return transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
}}

// latinTwin is the deliberate table of what the Unicode decomposition does
// not fold: Ø (a letter of its own, not O with a mark) and the Cyrillic
// capitals that plates in Cyrillic-script countries share with Latin ones,
// so that a booking typed on a Russian or Bulgarian keyboard matches the
// camera's Latin read. Cyrillic letters without a twin stay invalid.
var latinTwin = map[rune]byte{
	'Ø': 'O',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H',
	'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T', 'У': 'Y', 'Х': 'X',
}

func normalizeUnicode(s string) (string, error) {
	t := foldPool.Get().(transform.Transformer)
	folded, _, err := transform.String(t, s)
	foldPool.Put(t)
	if err != nil {
		return "", ErrInvalidPlate
	}
	// What is left outside ASCII is a Latin twin or the middle dot (a
	// separator); the rest of the rules are the ASCII path's.
	ascii := make([]byte, 0, len(folded))
	for _, r := range folded {
		switch {
		case r < utf8.RuneSelf:
			ascii = append(ascii, byte(r))
		case r == '·':
		default:
			c, ok := latinTwin[unicode.ToUpper(r)]
			if !ok {
				return "", ErrInvalidPlate
			}
			ascii = append(ascii, c)
		}
	}
	return normalizeASCII(string(ascii))
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
