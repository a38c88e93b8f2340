package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// exported returns every metric name the cloud and edge code registers:
// the string literals in their non-test source that look like one. It is
// the quick check, run by `go test ./deploy/grafana` alone; the demo run in
// sim/scenario (TestScenarios/demo) holds the same names against what the
// running processes export.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"((?:parkgate|parkedge)_[a-z0-9_]+)"`)
	names := map[string]bool{}
	for _, root := range []string{"../../cloud", "../../edge"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range lit.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func TestDashboardMetricsExist(t *testing.T) {
	qs, err := Queries()
	if err != nil {
		t.Fatal(err)
	}
	names := exported(t)
	panels := map[string]bool{}
	for _, q := range qs {
		panels[q.Panel] = true
	}
	if len(panels) < 13 {
		t.Errorf("%d panels with queries", len(panels))
	}
	for _, q := range qs {
		used := MetricNames(q.Expr)
		if len(used) == 0 {
			t.Errorf("panel %q: %q names no parkgate or parkedge metric", q.Panel, q.Expr)
		}
		for _, name := range used {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && names[b] {
					base = b
				}
			}
			if !names[base] {
				t.Errorf("panel %q: %s is not exported by parkcloud or parkedge", q.Panel, name)
			}
		}
	}
}

// TestDashboardPanelsHaveQueries: a panel without a query is an empty box
// on the operator's screen; Queries, which flattens panels into queries,
// would not show it.
func TestDashboardPanelsHaveQueries(t *testing.T) {
	var d struct {
		Panels []struct {
			Title   string            `json:"title"`
			Targets []json.RawMessage `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(JSON, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr          string
		metrics, labs []string
	}{
		{`sum(rate(parkgate_holds_created_total[$__rate_interval]))`, []string{"parkgate_holds_created_total"}, nil},
		{`histogram_quantile(0.99, sum by (le) (rate(parkgate_http_request_duration_seconds_bucket{method="POST",route="/v1/reservations"}[5m])))`,
			[]string{"parkgate_http_request_duration_seconds_bucket"}, []string{"method", "route", "le"}},
		{`sum by (decision, reason) (rate(parkedge_decisions_total{reason!~"x|y"}[1m])) / sum(parkgate_x)`,
			[]string{"parkedge_decisions_total", "parkgate_x"}, []string{"reason", "decision"}},
		{`count(parkedge_mqtt_connected == 0)`, []string{"parkedge_mqtt_connected"}, nil},
		{`sum by (route) (rate(parkgate_a_count{route=~"/v1/lots/{id}/x|parkgate_not=\"{y}\"",status!="5.."}[1m]))`,
			[]string{"parkgate_a_count"}, []string{"route", "status"}},
	} {
		if got := MetricNames(tc.expr); !slices.Equal(got, tc.metrics) {
			t.Errorf("MetricNames(%s) = %v, want %v", tc.expr, got, tc.metrics)
		}
		if got := LabelNames(tc.expr); !slices.Equal(got, tc.labs) {
			t.Errorf("LabelNames(%s) = %v, want %v", tc.expr, got, tc.labs)
		}
	}
}
