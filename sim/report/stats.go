package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Stats are percentiles of a set of durations.
type Stats struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// String is "p50 1.2ms · p99 4ms · max 9ms (n=120)".
func (s Stats) String() string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("p50 %s · p99 %s · max %s  (n=%d)", dur(s.P50), dur(s.P99), dur(s.Max), s.N)
}

// NewStats computes percentiles (nearest rank) of ds.
func NewStats(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Stats{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// dur prints a duration with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e3, 'g', 3, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d)/1e9, 'g', 3, 64) + "s"
}

// histogram puts durations in logarithmic buckets, four per decade, from
// the smallest to the largest value.
func histogram(ds []time.Duration) []Bucket {
	if len(ds) == 0 {
		return nil
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	lo = max(lo, time.Microsecond)
	const perDecade = 4
	start := math.Floor(math.Log10(float64(lo)) * perDecade)
	end := math.Floor(math.Log10(float64(max(hi, lo)))*perDecade) + 1
	var out []Bucket
	for e := start; e < end; e++ {
		out = append(out, Bucket{
			Lo: time.Duration(math.Pow(10, e/perDecade)),
			Hi: time.Duration(math.Pow(10, (e+1)/perDecade)),
		})
	}
	for _, d := range ds {
		d = max(d, time.Microsecond)
		i := int(math.Floor(math.Log10(float64(d))*perDecade) - start)
		out[max(0, min(i, len(out)-1))].Count++
	}
	return out
}
