package scenario_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/parkgate/parkgate/deploy/grafana"
	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/stack"
)

// scrapes are what a run's processes exported at its end: issue 16 asks
// for a dashboard whose every query names a metric a demo run exports, so
// the demo run of TestScenarios scrapes parkcloud and each parkedge as
// Prometheus would, once its traffic has settled, and
// TestScenarios/Dashboard holds the dashboard's queries against them.
type scrapes struct {
	cloud stack.Exposition
	edges map[string]stack.Exposition // by lot name
}

// take is a scenario.Options.BeforeCheck: the run is over and settled.
func (s *scrapes) take(ctx context.Context, st *stack.Stack, _ *sim.Run) error {
	var err error
	if s.cloud, err = st.Scrape(ctx, st.CloudURL+"/metrics"); err != nil {
		return err
	}
	s.edges = map[string]stack.Exposition{}
	for _, e := range st.Edges {
		if s.edges[e.Lot.Name], err = st.Scrape(ctx, e.URL+"/metrics"); err != nil {
			return err
		}
	}
	return nil
}

// checkDashboard: every metric a dashboard query names was exported — the
// cloud's parkgate_* by parkcloud, the edge's parkedge_* by every parkedge
// — and every label it selects on or groups by is on one of them. A
// vector metric appears only once a label value has been used, so the
// ones a short run may not touch are given their label values at
// registration (a zero series, which rate() also needs) rather than
// exempted here.
func checkDashboard(t *testing.T, s *scrapes) {
	t.Helper()
	if s.cloud == nil || len(s.edges) == 0 {
		t.Fatal("the demo run scraped nothing: it did not get to its end")
	}
	qs, err := grafana.Queries()
	if err != nil {
		t.Fatal(err)
	}
	lots := slices.Sorted(maps.Keys(s.edges))
	for _, q := range qs {
		// The label names each metric of the query was seen with.
		seen := map[string]bool{}
		for _, name := range grafana.MetricNames(q.Expr) {
			var missing []string
			switch {
			case strings.HasPrefix(name, "parkgate_"):
				if !s.cloud.Has(name) {
					missing = append(missing, "parkcloud")
				}
				maps.Copy(seen, s.cloud[name])
			default:
				for _, lot := range lots {
					if !s.edges[lot].Has(name) {
						missing = append(missing, "parkedge of "+lot)
					}
					maps.Copy(seen, s.edges[lot][name])
				}
			}
			if len(missing) > 0 {
				t.Errorf("panel %q: %s not exported by %s at the end of the demo run", q.Panel, name, strings.Join(missing, ", "))
			}
		}
		for _, l := range grafana.LabelNames(q.Expr) {
			if !seen[l] {
				t.Errorf("panel %q: no metric of %s has label %q (has %v)", q.Panel, q.Expr, l, slices.Sorted(maps.Keys(seen)))
			}
		}
	}
	t.Logf("%d dashboard queries checked against parkcloud and %d parkedge scrapes (%d and %d sample names)",
		len(qs), len(lots), len(s.cloud), len(s.edges[lots[0]]))
}
