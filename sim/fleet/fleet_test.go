package fleet_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/sim/fleet"
	"github.com/parkgate/parkgate/sim/stack"
)

// TestFleet runs the fleet small — fifty lots, each an agent of the real
// edge packages with two broker connections under its own credentials,
// through the production broker configuration — with a broker restart
// while bookings are confirmed, and asserts what must hold at any size:
// every confirmed booking applied at its lot's edge, every edge reconnected
// and caught up with its lot's change log after the restart, every booked
// car let in and its gate event in the cloud. It asserts no timing: the
// figures are for `make fleet` on a quiet machine.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("brings the whole system up")
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		t.Skip("mosquitto not installed")
	}
	bin := filepath.Join(t.TempDir(), "parkcloud")
	cmd := exec.Command("go", "build", "-o", bin, "./cloud/cmd/parkcloud")
	cmd.Dir = stack.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build parkcloud: %v\n%s", err, out)
	}
	progress := &stampWriter{start: time.Now()}
	res, err := fleet.Run(t.Context(), fleet.Options{
		Lots: 50, Spots: 20, Rate: 10, Duration: 10 * time.Second, Outage: 2 * time.Second, Idle: 2 * time.Second,
		Settle: 90 * time.Second, CloudBin: bin, DatabaseURL: os.Getenv("TEST_DATABASE_URL"),
		DBMaxConns: 8, Progress: progress,
	})
	if err != nil {
		t.Fatalf("fleet: %v\n%s", err, progress.b.String())
	}
	var out bytes.Buffer
	res.Write(&out)
	t.Log("\n" + out.String())
	for _, p := range res.Problems {
		t.Errorf("problem: %s", p)
	}
	checks := []struct {
		name      string
		got, want int
	}{
		{"broker connections (two gates a lot)", res.Connections, 100},
		{"bookings failed", res.Steady.Failed, 0},
		{"booked cars let in", res.EntriesOpen, res.Entries},
		{"their gate events in the cloud", res.EventsStored, res.Entries},
		{"steady bookings measured confirmed → applied", res.Steady.ConfirmedToApplied.N, res.Steady.Bookings},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if res.Steady.Bookings < 50 || res.Restart == nil || res.Restart.Bookings == 0 {
		t.Errorf("too little happened to judge: %d steady bookings, restart %+v", res.Steady.Bookings, res.Restart)
	}
	if res.Restart != nil && res.Restart.CommitToApplied.N != res.Restart.Bookings {
		t.Errorf("outage bookings applied: %d of %d", res.Restart.CommitToApplied.N, res.Restart.Bookings)
	}
	// A booking is one change for its edge, its confirmation: the hold
	// before it is silent (migration 021). The count is read as the phase
	// ends, when the last confirmations may still be on their way.
	if n, b := res.Steady.RelayPublished, float64(res.Steady.Bookings); n < 0.9*b || n > 1.1*b {
		t.Errorf("relay published %.0f changes for %.0f bookings; want one each", n, b)
	}
	if t.Failed() || testing.Verbose() {
		fmt.Fprintln(os.Stderr, progress.b.String())
	}
}

// stampWriter keeps the run's progress with the time since the start, shown
// when the test fails.
type stampWriter struct {
	mu    sync.Mutex
	start time.Time
	b     bytes.Buffer
}

func (w *stampWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(&w.b, "%6.1fs %s", time.Since(w.start).Seconds(), p)
	return len(p), nil
}
