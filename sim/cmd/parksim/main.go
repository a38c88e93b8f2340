// Command parksim brings the whole parkgate system up on this machine —
// Postgres, Redis and Mosquitto through deploy/services.sh, parkcloud and one
// parkedge per lot as real processes, the Stripe stand-in, simulated
// cameras, cars and drivers — runs a named scenario with faults on a
// schedule, proves the invariants from the system's own records, and writes
// a report.
//
//	parksim run [flags]    run a scenario (default: demo) and report
//	parksim list           list the scenarios
//	parksim fleet [flags]  a thousand lots' agents in one process through the
//	                       production broker; prints the fleet's figures
//
// The exit status is 0 when every invariant holds, 1 when one fails, 2 when
// the run could not be carried out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	code, err := m.Run(ctx, os.Args[1:])
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "parksim:", err)
	}
	os.Exit(code)
}
