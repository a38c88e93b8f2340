package traffic_test

import (
	"math/rand/v2"
	"testing"

	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim/traffic"
)

func TestPlates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	plates := traffic.Plates(rng, 2000)
	fold := map[string]bool{}
	cut := map[string]bool{}
	for _, p := range plates {
		n, err := protocol.NormalizePlate(p)
		if err != nil || n != p {
			t.Fatalf("plate %q is not normalised (%q, %v)", p, n, err)
		}
		f := protocol.FoldPlate(p)
		if fold[f] || cut[f[:len(f)-1]] {
			t.Fatalf("plate %q collides with another under look-alikes or a dropped last character", p)
		}
		fold[f], cut[f[:len(f)-1]] = true, true
		if s, err := protocol.NormalizePlate(traffic.Spell(rng, p)); err != nil || s != p {
			t.Fatalf("Spell(%q) normalises to %q, %v", p, s, err)
		}
	}
}

func TestNoiseRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := traffic.DefaultNoise()
	const plate = "BOS123Z"
	counts := map[string]int{}
	for range 10000 {
		s := n.Read(rng, plate)
		counts[s.Noise]++
		switch s.Noise {
		case "missed":
			if s.Plate != "" {
				t.Fatalf("a missed read carries plate %q", s.Plate)
			}
			continue
		case "":
			if s.Plate != plate || s.Confidence < 0.8 {
				t.Fatalf("clean read %+v", s)
			}
		case "low_confidence":
			if s.Confidence >= 0.8 {
				t.Fatalf("low read with confidence %v", s.Confidence)
			}
		case "lookalike":
			if protocol.FoldPlate(s.Plate) != protocol.FoldPlate(plate) || s.Plate == plate {
				t.Fatalf("look-alike read %q of %q", s.Plate, plate)
			}
		case "dropped":
			if s.Plate != plate[:len(plate)-1] {
				t.Fatalf("dropped read %q", s.Plate)
			}
		}
	}
	for _, k := range []string{"", "missed", "lookalike", "dropped", "low_confidence"} {
		if counts[k] == 0 {
			t.Errorf("no %q reads in 10000: %v", k, counts)
		}
	}
	if p := traffic.Perfect(); p.Read(rng, plate).Plate != plate {
		t.Fatal("a perfect camera erred")
	}
}
