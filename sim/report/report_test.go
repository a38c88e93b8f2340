package report_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/sim/check"
	"github.com/parkgate/parkgate/sim/internal/simtest"
	"github.com/parkgate/parkgate/sim/report"
)

func setup(t *testing.T) *report.Summary {
	t.Helper()
	run := simtest.Run()
	return report.Summarize(run, check.Evaluate(run))
}

func TestSummarize(t *testing.T) {
	s := setup(t)
	j := s.Journeys
	if j.Drivers != 13 || j.Booked != 9 || j.Paid != 8 || j.PaidLate != 1 || j.Entered != 4 || j.Exited != 4 || j.Intruders != 1 || j.NoShow != 1 {
		t.Errorf("journeys %+v", j)
	}
	// One of each lifecycle journey, each as it should end; driver 7's
	// late exit is inside its extension, so only driver 8 overstayed.
	if want := (report.Life{CancelIn: 1, CancelInRefunded: 1, CancelOut: 1, CancelOutRefused: 1, CodeCancelled: 1, CodeCancelledNo: 1,
		ExtendAsked: 1, Extended: 1, Overstays: 1, OverstaysPaid: 1, CodeShown: 1, CodeShownIn: 1,
		Permits: 2, PermitsIn: 2, Revoked: 1, RevokedRefused: 1, Resets: 1, ResetsIn: 1}); !reflect.DeepEqual(j.Life, want) || j.Overstayed != 1 {
		t.Errorf("life %+v, overstayed %d", j.Life, j.Overstayed)
	}
	if s.Refunds.Count != 2 || s.Refunds.Expected != 2 {
		t.Errorf("refunds %+v", s.Refunds)
	}
	if s.Latency.ReadToBarrier.N != 13 || s.Latency.ReadToBarrier.Max != time.Millisecond {
		t.Errorf("read to barrier %+v", s.Latency.ReadToBarrier)
	}
	if s.Sync.Lag.N != 18 || s.Sync.Lag.P50 != 5*time.Millisecond {
		t.Errorf("sync lag %+v", s.Sync.Lag)
	}
	if !s.Pass {
		t.Error("the fixture should pass")
	}
}

func TestNewStats(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := report.NewStats(ds)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Fatalf("stats %+v", s)
	}
	if z := report.NewStats(nil); z.N != 0 || z.String() != "—" {
		t.Fatalf("empty stats %+v", z)
	}
}

func TestWriteFiles(t *testing.T) {
	s := setup(t)
	dir := t.TempDir()
	if err := s.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	t.Run("JSON", func(t *testing.T) {
		b, err := os.ReadFile(s.Files.JSON)
		if err != nil {
			t.Fatal(err)
		}
		var back report.Summary
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Journeys.Entered != s.Journeys.Entered || back.Refunds != s.Refunds || back.Latency != s.Latency ||
			len(back.Invariants) != len(check.All) || len(back.Series.Latency) == 0 {
			t.Fatalf("JSON round trip lost data: %+v", back.Journeys)
		}
	})
	t.Run("HTMLIsSelfContained", func(t *testing.T) {
		b, err := os.ReadFile(s.Files.HTML)
		if err != nil {
			t.Fatal(err)
		}
		html := string(b)
		svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(html, -1)
		if len(svgs) != 3 {
			t.Fatalf("%d charts, want 3 (latency, occupancy, events)", len(svgs))
		}
		for _, svg := range svgs {
			dec := xml.NewDecoder(strings.NewReader(svg))
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
				}
			}
		}
		stripped := strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, "")
		for _, external := range []string{"src=", "href=", "url(", "@import", "http://", "https://"} {
			if strings.Contains(stripped, external) {
				t.Errorf("page refers to something outside itself: %q", external)
			}
		}
		for _, want := range []string{"no_overlap", fmt.Sprintf("All %d invariants hold", len(check.All)), "lot-1"} {
			if !strings.Contains(html, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})
}

func TestWriteText(t *testing.T) {
	s := setup(t)
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"journeys", "decisions", "refunds", "gate latency", "read → barrier", "sync lag",
		"offline", "PASS  no_overlap", "ALL INVARIANTS HOLD", "edge_cut lot-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	s.Invariants[0].Pass, s.Invariants[0].Violations = false, []string{"spot 1 double booked"}
	s.Pass = false
	b.Reset()
	_ = s.WriteText(&b)
	if !strings.Contains(b.String(), "FAIL  no_overlap") || !strings.Contains(b.String(), "✗ spot 1 double booked") ||
		!strings.Contains(b.String(), "INVARIANTS FAILED") {
		t.Errorf("a failure is not shown:\n%s", b.String())
	}
}
