package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var metricName = regexp.MustCompile(`\b(?:parkgate|parkedge)_[a-z0-9_]+\b`)

// exported returns every metric name the cloud and edge code registers:
// the string literals in their non-test source that look like one. It
// reads the source rather than scraping a running pair of services because
// a vector metric appears on /metrics only once a label value has been
// seen, which would make the check depend on what the scenario happened to
// do.
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
	b, err := os.ReadFile("parkgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	names := exported(t)
	if len(d.Panels) < 9 {
		t.Errorf("%d panels", len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			used := metricName.FindAllString(target.Expr, -1)
			if len(used) == 0 {
				t.Errorf("panel %q: %q names no parkgate or parkedge metric", p.Title, target.Expr)
			}
			for _, name := range used {
				base := name
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(name, suffix); ok && names[b] {
						base = b
					}
				}
				if !names[base] {
					t.Errorf("panel %q: %s is not exported by parkcloud or parkedge", p.Title, name)
				}
			}
		}
	}
}
