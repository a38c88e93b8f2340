package stack

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseExposition(t *testing.T) {
	const text = `# HELP parkgate_x_seconds A histogram.
# TYPE parkgate_x_seconds histogram
parkgate_x_seconds_bucket{route="/v1/lots/{id}",status="200",le="0.1"} 3
parkgate_x_seconds_bucket{route="/v1/a=\"b\", c",status="200",le="+Inf"} 4
parkgate_x_seconds_sum{route="/v1/lots/{id}",status="200"} 0.2
parkgate_x_seconds_count{route="/v1/lots/{id}",status="200"} 4

parkedge_outbox_depth 0
parkgate_refunds_total{reason="operator"} 0
`
	x, err := ParseExposition(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"parkgate_x_seconds_bucket": {"le", "route", "status"},
		"parkgate_x_seconds_sum":    {"route", "status"},
		"parkgate_x_seconds_count":  {"route", "status"},
		"parkedge_outbox_depth":     {},
		"parkgate_refunds_total":    {"reason"},
	}
	if len(x) != len(want) {
		t.Errorf("names %v, want %d", slices.Sorted(maps.Keys(x)), len(want))
	}
	for name, labels := range want {
		if !x.Has(name) {
			t.Errorf("%s missing", name)
			continue
		}
		if got := slices.Sorted(maps.Keys(x[name])); !slices.Equal(got, labels) {
			t.Errorf("%s labels %v, want %v", name, got, labels)
		}
	}
	if x.Has("parkgate_x_seconds") {
		t.Error("a histogram's family name is not a sample name")
	}
	if _, err := ParseExposition(strings.NewReader("{a=\"b\"} 1\n")); err == nil {
		t.Error("a sample without a name parsed")
	}
}
