package scenario_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/pgserver"
	"github.com/parkgate/parkgate/sim/scenario"
)

// TestFaults is the fault suite's short form (make soak runs the long
// one): the faults scenario at a small size, against real processes and a
// Postgres and Redis of its own. The run must pass every invariant, and
// each fault must have happened, lost nothing and the system come back from
// it within a bound.
func TestFaults(t *testing.T) {
	t.Parallel()
	if _, err := pgserver.BinDir(); err != nil {
		t.Skip(err.Error())
	}
	log := &lockedBuffer{}
	opts := options("faults", scenario.Size{Lots: 2, Spots: 30, Duration: 32 * time.Second, Rate: 1.5}, log)
	opts.DatabaseURL = "" // its own Postgres
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := scenario.Run(ctx, opts)
	j := &job{name: "faults", opts: opts, log: log, out: out, err: err, took: time.Since(start)}
	report(t, j)
	var b bytes.Buffer
	b.WriteString(scenario.FaultMarkdown(out.FaultTable, out.Results))
	t.Logf("fault table:\n%s", b.String())

	rows := map[string]scenario.FaultRow{}
	for _, r := range out.FaultTable {
		rows[r.Kind] = r
	}
	// How long each may take to come back, with room for a loaded CI box:
	// a restart is a second or two; what the clients see must end with it.
	bound := 20 * time.Second
	for _, kind := range []scenario.FaultKind{scenario.FaultPGRestart, scenario.FaultRedisRestart,
		scenario.FaultBrokerRestart, scenario.FaultCloudKill, scenario.FaultEdgeKill, scenario.FaultEdgeDiskFull,
		scenario.FaultWebhookRedeliver, scenario.FaultWebhookReplay} {
		t.Run(string(kind), func(t *testing.T) {
			r, ok := rows[string(kind)]
			switch {
			case !ok:
				t.Fatal("never happened")
			case strings.HasPrefix(r.Detail, "skipped"):
				t.Skip(r.Detail) // no small disk to fill without root
			case strings.HasPrefix(r.Detail, "error"):
				t.Errorf("did not come back: %s", r.Detail)
			case r.Lost > 0:
				t.Errorf("%d answered requests lost their record", r.Lost)
			case r.Recover > bound:
				t.Errorf("recovered after %s, want within %s", r.Recover, bound)
			case r.Requests == 0:
				t.Errorf("no request was made during it: the fault was not under load")
			}
		})
	}
}
