package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parkgate/parkgate/sim/fleet"
	"github.com/parkgate/parkgate/sim/stack"
)

// fleetCmd runs `parksim fleet`: many lots, their agents in this process,
// the production broker configuration; it prints the figures and writes
// them as fleet.json and fleet.txt into a report directory.
func (m *Main) fleetCmd(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("parksim fleet", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var o fleet.Options
	var reportDir string
	fs.IntVar(&o.Lots, "lots", 1000, "lots, each with its own edge agent in this process")
	fs.IntVar(&o.Spots, "spots", 50, "spots per lot")
	fs.StringVar(&o.Gates, "gates", "entry-1=entry,exit-1=exit", "each lot's gates (PARKGATE_GATES); every further gate is one more broker connection")
	fs.Float64Var(&o.Rate, "rate", 20, "bookings per second across all lots (held, paid at the Stripe stand-in, confirmed by its webhook)")
	fs.DurationVar(&o.Duration, "duration", 2*time.Minute, "how long the steady phase books")
	fs.DurationVar(&o.Outage, "outage", 5*time.Second, "broker down this long in the restart phase while bookings go on; 0 skips the phase")
	fs.DurationVar(&o.Idle, "idle", 15*time.Second, "how long the CPU of the connected, unbooked fleet is measured first; 0 skips it")
	fs.DurationVar(&o.Settle, "settle", 3*time.Minute, "longest wait for changes to reach the edges after each phase")
	fs.BoolVar(&o.PrivateServices, "private-services", true, "run the run's own Postgres and Redis, so their CPU is counted per booking")
	fs.IntVar(&o.DBMaxConns, "db-max-conns", 0, "parkcloud's Postgres pool (0: its default)")
	fs.StringVar(&o.CloudBin, "cloud-bin", defaultBin("parkcloud"), "parkcloud executable (make build)")
	fs.BoolVar(&o.Services, "services", true, "run deploy/services.sh first")
	fs.StringVar(&o.DatabaseURL, "database-url", envOr("PARKSIM_DATABASE_URL", stack.DefaultDatabaseURL), "Postgres when not --private-services")
	fs.StringVar(&o.RedisURL, "redis-url", envOr("PARKSIM_REDIS_URL", stack.DefaultRedisURL), "Redis when not --private-services")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run's directory (agents.log, the broker's files, the edges' stores)")
	fs.StringVar(&reportDir, "report-dir", "reports", "where the report directory is made")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: parksim fleet [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitPass, err
		}
		return exitError, err
	}
	switch {
	case fs.NArg() > 0:
		return exitError, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.Lots < 1 || o.Spots < 1:
		return exitError, errors.New("--lots and --spots must be at least 1")
	case o.Rate <= 0 || o.Duration < 5*time.Second:
		return exitError, errors.New("--rate must be positive and --duration at least 5s")
	case o.Outage < 0 || o.Idle < 0:
		return exitError, errors.New("--outage and --idle must not be negative")
	}
	if o.Idle == 0 {
		o.Idle = -1 // fleet.Options: negative skips the idle phase
	}
	if o.Outage == 0 {
		o.Outage = -1 // fleet.Options: negative skips the restart
	}
	o.Progress = m.Stderr
	dir := filepath.Join(reportDir, time.Now().Format("20060102-150405")+"-fleet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return exitError, err
	}
	if o.Keep {
		o.Dir = filepath.Join(dir, "run")
	}
	res, err := fleet.Run(ctx, o)
	if err != nil {
		return exitError, err
	}
	fmt.Fprintln(m.Stdout)
	res.Write(m.Stdout)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "fleet.json"), append(b, '\n'), 0o644); err != nil {
		return exitError, err
	}
	f, err := os.Create(filepath.Join(dir, "fleet.txt"))
	if err != nil {
		return exitError, err
	}
	res.Write(f)
	if err := f.Close(); err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "\nwritten: %s/fleet.txt, fleet.json\n", dir)
	if len(res.Problems) > 0 {
		return exitFail, fmt.Errorf("%d problems", len(res.Problems))
	}
	return exitPass, nil
}
