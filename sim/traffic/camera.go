package traffic

import (
	"math"
	"math/rand/v2"
	"strings"

	"github.com/parkgate/parkgate/protocol"
)

// Noise is how imperfect the simulated cameras are. Probabilities are per
// read.
type Noise struct {
	Miss      float64 // the camera sees nothing: no read is posted, it re-triggers
	LookAlike float64 // one character read as its look-alike (O↔0, I↔1, B↔8, S↔5, Z↔2)
	Drop      float64 // the last character is lost (dirt, a tow bar)
	Low       float64 // a read below the gate's confidence threshold
	// Mean and Spread of the confidence of a good read, clipped to [0.80, 0.999].
	Mean, Spread float64
}

// DefaultNoise is a camera having an ordinary day.
func DefaultNoise() Noise {
	return Noise{Miss: 0.05, LookAlike: 0.08, Drop: 0.03, Low: 0.06, Mean: 0.93, Spread: 0.04}
}

// Perfect is a camera that never errs, for load runs that measure the gate.
func Perfect() Noise { return Noise{Mean: 0.97} }

// Shot is one thing a camera did.
type Shot struct {
	Missed     bool
	Plate      string
	Confidence float64
	Noise      string // "", "lookalike", "dropped", "low_confidence"
}

var swaps = map[byte]byte{'O': '0', '0': 'O', 'I': '1', '1': 'I', 'B': '8', '8': 'B', 'S': '5', '5': 'S', 'Z': '2', '2': 'Z'}

// Read is what a camera makes of plate, a normalised plate, using rng.
func (n Noise) Read(rng *rand.Rand, plate string) Shot {
	if rng.Float64() < n.Miss {
		return Shot{Missed: true, Noise: "missed"}
	}
	s := Shot{Plate: plate}
	conf := n.Mean + rng.NormFloat64()*n.Spread
	s.Confidence = math.Min(0.999, math.Max(0.80, conf))
	switch r := rng.Float64(); {
	case r < n.LookAlike:
		var idx []int
		for i := 0; i < len(plate); i++ {
			if _, ok := swaps[plate[i]]; ok {
				idx = append(idx, i)
			}
		}
		if len(idx) > 0 {
			i := idx[rng.IntN(len(idx))]
			b := []byte(plate)
			b[i] = swaps[b[i]]
			s.Plate, s.Noise = string(b), "lookalike"
		}
	case r < n.LookAlike+n.Drop:
		if len(plate) > protocol.MinPlateLen+1 {
			s.Plate, s.Noise = plate[:len(plate)-1], "dropped"
		}
	case r < n.LookAlike+n.Drop+n.Low:
		s.Confidence = 0.50 + rng.Float64()*0.29
		s.Noise = "low_confidence"
	}
	s.Confidence = math.Round(s.Confidence*1000) / 1000
	return s
}

// Plates makes n distinct plates in the pattern LLL NNN L (the last letter
// a country's check letter, say) such that no two fold to the same
// look-alike key and no two share a key once their last character is
// dropped: a noisy read of one car can then never match another car's plate,
// only be ambiguous or refused, so an open is always for the right car.
// Plates are normalised; Spell shows one as a driver might type it.
func Plates(rng *rand.Rand, n int) []string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	const digits = "0123456789"
	seenFold := map[string]bool{}
	seenCut := map[string]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		b := make([]byte, 7)
		for i := 0; i < 3; i++ {
			b[i] = letters[rng.IntN(len(letters))]
		}
		for i := 3; i < 6; i++ {
			b[i] = digits[rng.IntN(len(digits))]
		}
		b[6] = letters[rng.IntN(len(letters))]
		p := string(b)
		f := protocol.FoldPlate(p)
		cut := f[:len(f)-1]
		if seenFold[f] || seenCut[cut] {
			continue
		}
		seenFold[f], seenCut[cut] = true, true
		out = append(out, p)
	}
	return out
}

// Spell writes a normalised plate the way a driver might type it into an
// app: lower case here and there, a space or a hyphen between the groups.
func Spell(rng *rand.Rand, plate string) string {
	if len(plate) != 7 {
		return plate
	}
	s := plate[:3] + []string{" ", "-", "", " "}[rng.IntN(4)] + plate[3:6] + []string{" ", "", "-"}[rng.IntN(3)] + plate[6:]
	if rng.IntN(3) == 0 {
		s = strings.ToLower(s)
	}
	return s
}
