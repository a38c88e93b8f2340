// Package promtext reads the unlabelled samples of a Prometheus text
// exposition (a /metrics page): name → value. It is what the simulator and
// the benchmarks need of a scrape — counters and gauges without labels,
// and a histogram's _sum and _count — and no more; labelled series and
// comments are skipped.
package promtext

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Unlabelled returns the page's unlabelled samples by name.
func Unlabelled(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}
