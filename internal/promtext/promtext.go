// Package promtext reads the samples of a Prometheus text exposition (a
// /metrics page): series → value. It is what the simulator and the
// benchmarks need of a scrape — counters, gauges, a histogram's _sum and
// _count, unlabelled or by one labelled series — and no more; comments,
// timestamps and malformed lines are skipped.
package promtext

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Unlabelled returns the page's unlabelled samples by name.
func Unlabelled(r io.Reader) (map[string]float64, error) {
	all, err := Series(r)
	for k := range all {
		if strings.Contains(k, "{") {
			delete(all, k)
		}
	}
	return all, err
}

// Series returns every sample of the page by its series as the page writes
// it: a name, or a name and its labels, as
// parkgate_stripe_call_seconds_count{op="refund",outcome="ok"}
// (client_golang writes labels sorted by name).
func Series(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		// A label's value may hold a space; the series ends at its last
		// brace.
		cut := 0
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			cut = i + 1
		}
		j := strings.IndexByte(line[cut:], ' ')
		if j < 0 {
			continue
		}
		name, val := line[:cut+j], strings.TrimSpace(line[cut+j+1:])
		if i := strings.IndexByte(val, ' '); i >= 0 {
			val = val[:i] // a timestamp follows
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}
