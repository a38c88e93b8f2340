package grafana

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
)

// JSON is the dashboard as Grafana imports it.
//
//go:embed parkgate.json
var JSON []byte

// Query is one panel query.
type Query struct {
	Panel string // the panel's title
	Expr  string // PromQL
}

// Queries returns every query of every panel, in the dashboard's order.
func Queries() ([]Query, error) {
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(JSON, &d); err != nil {
		return nil, fmt.Errorf("grafana: parkgate.json: %w", err)
	}
	var qs []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			qs = append(qs, Query{Panel: p.Title, Expr: t.Expr})
		}
	}
	return qs, nil
}

// metricName matches a metric of ours in PromQL. Every metric the cloud
// exports is parkgate_*, every one the edge exports parkedge_*: the one
// naming rule is what lets a query's metrics be picked out without a
// PromQL parser.
var metricName = regexp.MustCompile(`\b(?:parkgate|parkedge)_[a-z0-9_]+\b`)

// MetricNames returns the parkgate_ and parkedge_ names in expr, as written
// (a histogram's with its _bucket, _sum or _count).
func MetricNames(expr string) []string {
	return metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

// Metrics returns every metric name the dashboard's queries use, sorted,
// each once.
func Metrics() ([]string, error) {
	qs, err := Queries()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, q := range qs {
		for _, n := range MetricNames(q.Expr) {
			seen[n] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

var (
	// A PromQL string: label values, which may hold braces and '=' (a
	// route such as /v1/lots/{id}), are dropped before looking for names.
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// A selector's braces, and each matcher's label name in them.
	selector = regexp.MustCompile(`\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	// An aggregation's by or without clause.
	grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	label    = regexp.MustCompile(`[a-zA-Z_][a-zA-Z0-9_]*`)
)

// LabelNames returns the label names expr selects on or groups by, each
// once, in order of appearance. A query that groups by a label its metrics
// do not have draws one series with an empty legend instead of failing, so
// these are checked too.
func LabelNames(expr string) []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	expr = quoted.ReplaceAllString(expr, `""`)
	for _, s := range selector.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcher.FindAllStringSubmatch(s[1], -1) {
			add(m[1])
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, n := range label.FindAllString(g[1], -1) {
			add(n)
		}
	}
	return names
}
