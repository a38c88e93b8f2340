// Command parkcloud is the parkgate reservation service: the HTTP API, the
// payment-event workers, the outbox relay to the edges and the gate-event
// ingest, in one process that any number of replicas may run.
//
//	parkcloud serve     run the service
//	parkcloud migrate   apply database migrations and exit
//	parkcloud keygen    print a new signing key and its public key
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // lots name IANA zones; a slim container may lack /usr/share/zoneinfo

	"github.com/parkgate/parkgate/protocol"
)

// usage is the top of every help page.
const usage = `parkcloud: the parkgate reservation service. The HTTP API, the payment-event
workers, the outbox relay to the edges and the gate-event ingest run in one
process, and any number of replicas may run side by side.

Usage:
  parkcloud serve [flags]     run the service (applies pending migrations first)
  parkcloud migrate [flags]   apply the database migrations and exit
  parkcloud keygen            print a new PARKGATE_SIGNING_KEY and the public key
                              the edges need (PARKGATE_CLOUD_PUBLIC_KEYS)
  parkcloud help              this page with every flag (also -h, -help, --help)
`

// usageError is a mistake on the command line: exit status 2, as the flag
// package's own commands do, not 1 as for a failure while running.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:])
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "parkcloud:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "parkcloud:", err)
	os.Exit(1)
}

// run dispatches on the command. A bare `parkcloud` no longer starts
// serving: a typo or a forgotten argument must not bring up a replica
// against whatever DATABASE_URL the shell has. Deployments name `serve`.
func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return usageError{errors.New("no command: say serve, migrate or keygen")}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		var c Config
		return c.ParseFlags([]string{"-help"})
	case "keygen":
		if len(args) > 0 {
			return usageError{fmt.Errorf("keygen takes no arguments")}
		}
		return keygen()
	case "serve", "migrate":
	default:
		fmt.Fprint(os.Stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
	m := NewMain()
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if cmd == "migrate" {
		return m.Migrate(ctx)
	}
	defer m.Close()
	return m.Run(ctx)
}

func keygen() error {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	key := ed25519.NewKeyFromSeed(seed)
	fmt.Printf("PARKGATE_SIGNING_KEY=%s\n", base64.StdEncoding.EncodeToString(seed))
	fmt.Printf("PARKGATE_CLOUD_PUBLIC_KEYS=%s\n", protocol.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	slog.Info("keep the signing key secret; give the public key to the edges")
	return nil
}
