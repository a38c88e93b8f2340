package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/protocol"
)

const killChildEnv = "PARKGATE_TEST_KILL_CHILD_DB"

// TestKillChild is not a test on its own: TestKill re-runs the test binary
// with killChildEnv set, and this function is then the agent it kills. It
// decides as fast as it can from several goroutines (as several cameras
// would) and prints each event id on stdout once HandleRead has returned,
// that is once the event is acknowledged as durable.
func TestKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("run by TestKill")
	}
	s, err := bolt.Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pin := hwtest.NewPin("entry-1.barrier")
	barrier, _ := hw.NewBarrier(pin, time.Millisecond)
	exitPin := hwtest.NewPin("exit-1.barrier")
	exitBarrier, _ := hw.NewBarrier(exitPin, time.Millisecond)
	agent, err := edge.NewAgent(edge.Config{
		LotID: "lot", Store: s, Policy: edge.DefaultPolicy(),
		Gates: []edge.GateConfig{
			{Gate: edge.Gate{ID: "entry-1", Direction: protocol.DirectionEntry}, Barrier: barrier},
			{Gate: edge.Gate{ID: "exit-1", Direction: protocol.DirectionExit}, Barrier: exitBarrier},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				gate := []string{"entry-1", "exit-1"}[i%2]
				res, err := agent.HandleRead(context.Background(), edge.PlateRead{
					GateID: gate, Plate: fmt.Sprintf("KL%d%03d", w, i%100), Confidence: 0.95})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintln(os.Stdout, res.EventID) // one write: a line is either whole in the pipe or absent
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKill kills an agent with SIGKILL in the middle of its writes, several
// times, and checks after each that every event it acknowledged is still in
// the outbox and the store opens and works.
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "edge.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var changes []protocol.ReservationChange
	for w := range 8 {
		for i := range 100 {
			seq := int64(len(changes) + 1)
			changes = append(changes, upsert(seq, fmt.Sprintf("r%d-%d", w, i), fmt.Sprintf("KL%d%03d", w, i), time.Now().Add(-time.Hour)))
		}
	}
	if _, err := s.Apply(changes); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	acked := map[string]bool{}
	for round := range 3 {
		killAt := 200 + rand.IntN(2000)
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			if len(line) != 36 {
				continue // the test framework's own output
			}
			acked[line] = true
			n++
			if n == killAt {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v before it was killed", round, err)
		}

		s, err := bolt.Open(path, nil)
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		entries, err := s.Pending(1 << 30)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		have := make(map[string]bool, len(entries))
		for _, e := range entries {
			have[e.EventID] = true
		}
		missing := 0
		for id := range acked {
			if !have[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged events lost", round, missing, len(acked))
		}
		if s.Depth() != len(entries) {
			t.Fatalf("round %d: depth %d, %d entries", round, s.Depth(), len(entries))
		}
		t.Logf("round %d: killed after %d acknowledged events (%d read after the kill signal); outbox holds %d, acknowledged so far %d",
			round, killAt, n-killAt, len(entries), len(acked))
		_ = s.Close()
	}
}
