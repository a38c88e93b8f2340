package stack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Exposition is what one scrape of /metrics showed: every sample name (a
// histogram's as _bucket, _sum and _count) with the label names its
// samples carry.
type Exposition map[string]map[string]bool

// Has reports whether name had a sample.
func (x Exposition) Has(name string) bool {
	_, ok := x[name]
	return ok
}

// Scrape reads the Prometheus text exposition at url (parkcloud's or a
// parkedge's /metrics), as Prometheus would: a GET with a deadline.
func (s *Stack) Scrape(ctx context.Context, url string) (Exposition, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stack: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stack: scrape %s: %s", url, resp.Status)
	}
	x, err := ParseExposition(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("stack: scrape %s: %w", url, err)
	}
	return x, nil
}

// labelPair is one name="value" of a sample, the value with its escapes.
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

// ParseExposition reads the text format (version 0.0.4): comments and
// blank lines skipped, every sample line's name and label names kept.
func ParseExposition(r io.Reader) (Exposition, error) {
	x := Exposition{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			return nil, fmt.Errorf("not a sample: %q", line)
		}
		name := line[:end]
		labels := x[name]
		if labels == nil {
			labels = map[string]bool{}
			x[name] = labels
		}
		if line[end] == '{' {
			for _, m := range labelPair.FindAllStringSubmatch(line[end:], -1) {
				labels[m[1]] = true
			}
		}
	}
	return x, sc.Err()
}
