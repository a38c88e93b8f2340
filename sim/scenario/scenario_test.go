package scenario_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
	"github.com/parkgate/parkgate/sim/scenario"
	"github.com/parkgate/parkgate/sim/stack"
)

// bins are parkcloud and parkedge, built once for the whole test binary.
var bins struct{ cloud, edge string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parksim-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bins.cloud, bins.edge = filepath.Join(dir, "parkcloud"), filepath.Join(dir, "parkedge")
	// Built here rather than taken from bin/: the test must run the code
	// it is testing, not whatever was built last. A build that fails fails
	// the tests; nothing is skipped.
	var buildErr error
	for _, b := range []struct{ out, pkg string }{{bins.cloud, "./cloud/cmd/parkcloud"}, {bins.edge, "./edge/cmd/parkedge"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = stack.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
			break
		}
	}
	if buildErr != nil {
		fmt.Fprintln(os.Stderr, buildErr)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a run's progress, shown only when the run fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// options are a test run's settings: small, quick, and modest with
// Postgres connections, since several systems share one server.
func options(name string, sz scenario.Size, log *lockedBuffer) scenario.Options {
	return scenario.Options{
		Scenario: name, Size: sz, Seed: 42,
		CloudBin: bins.cloud, EdgeBin: bins.edge,
		DatabaseURL: os.Getenv("TEST_DATABASE_URL"),
		Settle:      40 * time.Second,
		DBMaxConns:  6,
		Progress:    log,
	}
}

type job struct {
	name string
	opts scenario.Options
	log  *lockedBuffer
	out  *scenario.Outcome
	err  error
	took time.Duration
}

// runAll runs the jobs, a few systems at a time: each is a cloud, edges and
// a broker, and waiting on the clock is most of what they do, so they
// overlap well even on two cores. Running them from here rather than as
// parallel subtests keeps go test's -parallel (GOMAXPROCS) from serialising
// minute-long runs.
func runAll(jobs []*job, at int) {
	sem := make(chan struct{}, at)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			j.out, j.err = scenario.Run(ctx, j.opts)
			j.took = time.Since(start)
		}()
	}
	wg.Wait()
}

func report(t *testing.T, j *job) {
	t.Helper()
	if j.err != nil {
		t.Fatalf("%s could not run: %v\n%s", j.name, j.err, j.log.String())
	}
	t.Logf("%s took %s", j.name, j.took.Round(time.Second))
	if !j.out.Pass {
		var b bytes.Buffer
		_ = j.out.Summary.WriteText(&b)
		t.Fatalf("%s failed its invariants:\n%s\nprogress:\n%s", j.name, b.String(), j.log.String())
	}
}

// TestScenarios runs every named scenario at a small size and asserts that
// each passes its invariants and its own expectations.
func TestScenarios(t *testing.T) {
	t.Parallel()
	sizes := map[string]scenario.Size{
		"demo":           {Lots: 3, Spots: 6, Drivers: 24, Duration: 30 * time.Second},
		"offline-edge":   {Lots: 2, Spots: 6, Drivers: 12, Duration: 24 * time.Second},
		"late-payment":   {Lots: 1, Spots: 8, Drivers: 12, Duration: 20 * time.Second},
		"broker-restart": {Lots: 2, Spots: 6, Drivers: 12, Duration: 20 * time.Second},
		"hot-lot":        {Lots: 1, Spots: 3, Drivers: 30, Duration: 16 * time.Second},
		"flaky-network":  {Lots: 2, Spots: 6, Drivers: 12, Duration: 16 * time.Second},
		"happy":          {Lots: 2, Spots: 6, Drivers: 12, Duration: 16 * time.Second},
		"load":           {Lots: 2, Spots: 30, Duration: 15 * time.Second, Rate: 3},
	}
	var jobs []*job
	demo := &scrapes{} // what the demo run's processes export at its end
	for _, sc := range scenario.List() {
		if sc.Name == "faults" {
			continue // TestFaults: it asserts the fault table too
		}
		sz, ok := sizes[sc.Name]
		if !ok {
			t.Errorf("scenario %s has no test size: every named scenario must be tested", sc.Name)
			continue
		}
		log := &lockedBuffer{}
		jobs = append(jobs, &job{name: sc.Name, opts: options(sc.Name, sz, log), log: log})
		if sc.Name == "demo" {
			jobs[len(jobs)-1].opts.BeforeCheck = demo.take
		}
	}
	// Longest first, so the last batch is not one long run alone.
	order := map[string]int{"demo": 0, "offline-edge": 1, "late-payment": 2, "broker-restart": 3}
	sortJobs(jobs, order)
	runAll(jobs, 4)
	for _, j := range jobs {
		t.Run(j.name, func(t *testing.T) {
			// The scenario's own expectations (exact fill for hot-lot,
			// refunds for late-payment, offline decisions for
			// offline-edge, …) are among the results report checks.
			report(t, j)
		})
	}
	t.Run("Dashboard", func(t *testing.T) { checkDashboard(t, demo) })
}

func sortJobs(jobs []*job, order map[string]int) {
	rank := func(j *job) int {
		if r, ok := order[j.name]; ok {
			return r
		}
		return len(order)
	}
	sort.SliceStable(jobs, func(a, b int) bool { return rank(jobs[a]) < rank(jobs[b]) })
}

// failing returns the names of the checks that fail.
func failing(rs []check.Result) []string {
	var out []string
	for _, r := range rs {
		if !r.Pass {
			out = append(out, r.Name)
		}
	}
	return out
}

func violations(rs []check.Result, name string) string {
	for _, r := range rs {
		if r.Name == name {
			return strings.Join(r.Violations, "\n")
		}
	}
	return ""
}

// TestChecksBite breaks a running system on purpose, from inside the test
// and with no switch in the shipped binaries, one thing at a time, and shows
// that the matching invariant fails each time: the checks are not
// decoration. The system is a happy run on a database whose overlap
// constraint was dropped at the start.
func TestChecksBite(t *testing.T) {
	t.Parallel()
	log := &lockedBuffer{}
	opts := options("happy", scenario.Size{Lots: 2, Spots: 4, Drivers: 6, Duration: 16 * time.Second}, log)
	var overlapRefused error
	opts.AfterStart = func(ctx context.Context, st *stack.Stack) error {
		// With the constraint in place, Postgres itself refuses the overlap.
		overlapRefused = insertOverlap(ctx, st)
		_, err := st.DB.Pool.Exec(ctx, `ALTER TABLE reservations DROP CONSTRAINT reservations_no_overlap`)
		return err
	}
	opts.BeforeCheck = func(ctx context.Context, st *stack.Stack, run *sim.Run) error {
		base := check.Evaluate(run)
		if f := failing(base); len(f) > 0 {
			return fmt.Errorf("the run fails before anything was broken: %v", f)
		}
		steps := []struct {
			name, check, want string
			break_            func(ctx context.Context, st *stack.Stack, run *sim.Run) error
		}{
			{"OverlapWithoutConstraint", "no_overlap", "both active and overlap", breakOverlap},
			{"RefundTwice", "late_payment_refunded_once", "refunded 2 times", breakRefundTwice},
			{"EventLost", "events_reached_cloud", "is missing", breakLoseEvent},
			{"ForgedReservation", "no_entry_without_reservation", "which the cloud does not have", breakForged},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				if err := s.break_(ctx, st, run); err != nil {
					t.Fatal(err)
				}
				if err := st.Collect(ctx, run); err != nil {
					t.Fatal(err)
				}
				rs := check.Evaluate(run)
				if !slices.Contains(failing(rs), s.check) {
					t.Fatalf("%s still passes after %s", s.check, s.name)
				}
				if v := violations(rs, s.check); !strings.Contains(v, s.want) {
					t.Fatalf("%s failed, but not with %q:\n%s", s.check, s.want, v)
				}
				t.Logf("%s: %s", s.check, strings.SplitN(violations(rs, s.check), "\n", 2)[0])
			})
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := scenario.Run(ctx, opts)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if overlapRefused == nil {
		t.Error("Postgres accepted overlapping reservations while the constraint was in place")
	} else if !strings.Contains(overlapRefused.Error(), "23P01") {
		t.Errorf("overlap refused, but not by the exclusion constraint: %v", overlapRefused)
	}
	// A payment refunded twice breaks refunds_in_policy's "each refund
	// once" as well.
	want := []string{"events_reached_cloud", "late_payment_refunded_once", "no_entry_without_reservation", "no_overlap", "refunds_in_policy"}
	got := failing(out.Results)
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("failing checks %v, want exactly %v", got, want)
	}
}
