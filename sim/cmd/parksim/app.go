package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parkgate/parkgate/sim/scenario"
	"github.com/parkgate/parkgate/sim/stack"
)

// Exit statuses.
const (
	exitPass  = 0
	exitFail  = 1 // an invariant failed
	exitError = 2 // the run could not be carried out, or bad usage
)

// Main is the parksim program.
type Main struct {
	Stdout, Stderr io.Writer
	Options        scenario.Options
	Load           bool
	Quiet          bool
}

// NewMain returns a Main writing to the process's stdout and stderr.
func NewMain() *Main { return &Main{Stdout: os.Stdout, Stderr: os.Stderr} }

func (m *Main) usage() {
	fmt.Fprint(m.Stderr, `usage: parksim <command> [flags]

commands:
  run    run a scenario against the whole system and report (default scenario: demo)
  list   list the scenarios
  fleet  many lots (default 1,000), their edge agents in one process, the production broker:
         confirmed → applied, relay rate, broker restart, memory per agent (parksim fleet --help)

Try: parksim run --help
`)
}

// Run runs the command in args and returns the exit status.
func (m *Main) Run(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		m.usage()
		return exitError, errors.New("no command")
	}
	switch args[0] {
	case "list":
		m.list()
		return exitPass, nil
	case "run":
		if err := m.ParseFlags(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitPass, err
			}
			return exitError, err
		}
		return m.run(ctx)
	case "fleet":
		return m.fleetCmd(ctx, args[1:])
	case "-h", "--help", "help":
		m.usage()
		return exitPass, nil
	}
	m.usage()
	return exitError, fmt.Errorf("unknown command %q", args[0])
}

func (m *Main) list() {
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tlots\tspots\tdrivers\tduration\twhat it shows")
	for _, sc := range scenario.List() {
		d := sc.Default
		drivers := fmt.Sprint(d.Drivers)
		if sc.Load {
			drivers = fmt.Sprintf("%.0f/s", d.Rate)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", sc.Name, d.Lots, d.Spots, drivers, d.Duration, sc.Summary)
	}
	tw.Flush()
	fmt.Fprintln(m.Stdout, "\nparksim run --scenario NAME [--lots N --spots N --drivers N --duration D --seed S]; parksim run --load --rate R")
}

// envOr returns the environment variable or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// defaultBin finds bin/NAME in the working directory or, failing that, in
// the module root above it, so the command works from anywhere in the repo.
func defaultBin(name string) string {
	local := filepath.Join("bin", name)
	if _, err := os.Stat(local); err == nil {
		return local
	}
	root := filepath.Join(stack.RepoRoot(), "bin", name)
	if _, err := os.Stat(root); err == nil {
		return root
	}
	return local
}

// ParseFlags reads the run command's flags.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("parksim run", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	o := &m.Options
	fs.StringVar(&o.Scenario, "scenario", "demo", "scenario to run (parksim list)")
	fs.IntVar(&o.Size.Lots, "lots", 0, "lots (0: the scenario's default)")
	fs.IntVar(&o.Size.Spots, "spots", 0, "spots per lot (0: the scenario's default)")
	fs.IntVar(&o.Size.Drivers, "drivers", 0, "drivers (0: the scenario's default)")
	fs.DurationVar(&o.Size.Duration, "duration", 0, "how long the traffic runs (0: the scenario's default)")
	fs.BoolVar(&m.Load, "load", false, "load mode: drivers arrive at --rate per second for --duration (the load scenario)")
	fs.Float64Var(&o.Size.Rate, "rate", 0, "drivers per second in load mode (0: 5)")
	fs.Uint64Var(&o.Seed, "seed", 0, "random seed; the same seed plans the same drivers (0: from the clock)")
	fs.StringVar(&o.ReportDir, "report-dir", "reports", "where the report directory is made")
	fs.StringVar(&o.CloudBin, "cloud-bin", defaultBin("parkcloud"), "parkcloud executable (make build)")
	fs.StringVar(&o.EdgeBin, "edge-bin", defaultBin("parkedge"), "parkedge executable (make build)")
	fs.BoolVar(&o.Services, "services", true, "run deploy/services.sh first (idempotent: it only checks when all is up)")
	fs.StringVar(&o.DatabaseURL, "database-url", envOr("PARKSIM_DATABASE_URL", stack.DefaultDatabaseURL),
		"Postgres the run makes its own schema in (env PARKSIM_DATABASE_URL)")
	fs.StringVar(&o.RedisURL, "redis-url", envOr("PARKSIM_REDIS_URL", stack.DefaultRedisURL), "Redis for the cloud (env PARKSIM_REDIS_URL)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run's database schema and the processes' logs and data")
	fs.DurationVar(&o.Settle, "settle", 45*time.Second, "longest wait after the traffic for the system to catch up")
	fs.BoolVar(&m.Quiet, "quiet", false, "no progress lines, only the report")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: parksim run [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if m.Load {
		o.Scenario = "load"
	}
	if _, err := scenario.Get(o.Scenario); err != nil {
		return err
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"lots", o.Size.Lots}, {"spots", o.Size.Spots}, {"drivers", o.Size.Drivers}} {
		if v.n < 0 {
			return fmt.Errorf("--%s must not be negative", v.name)
		}
	}
	if o.Size.Duration < 0 || (o.Size.Duration > 0 && o.Size.Duration < 15*time.Second) {
		return errors.New("--duration must be at least 15s: windows, holds and grace periods need room")
	}
	if o.Size.Rate < 0 {
		return errors.New("--rate must not be negative")
	}
	return nil
}

func (m *Main) run(ctx context.Context) (int, error) {
	if !m.Quiet {
		m.Options.Progress = m.Stderr
	}
	out, err := scenario.Run(ctx, m.Options)
	if err != nil {
		return exitError, err
	}
	fmt.Fprintln(m.Stdout)
	if err := out.Summary.WriteText(m.Stdout); err != nil {
		return exitError, err
	}
	if out.Summary.Files.HTML != "" {
		fmt.Fprintf(m.Stdout, "\nopen %s\n", out.Summary.Files.HTML)
	}
	if !out.Pass {
		var failed []string
		for _, r := range out.Results {
			if !r.Pass {
				failed = append(failed, r.Name)
			}
		}
		return exitFail, fmt.Errorf("invariants failed: %s", strings.Join(failed, ", "))
	}
	return exitPass, nil
}
