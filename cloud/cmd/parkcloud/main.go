// Command parkcloud is the parkgate reservation service: the HTTP API, the
// payment-event workers, the outbox relay to the edges and the gate-event
// ingest, in one process that any number of replicas may run.
//
//	parkcloud [serve]   run the service (default)
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "parkcloud:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate" || args[0] == "keygen") {
		cmd, args = args[0], args[1:]
	}
	if cmd == "keygen" {
		return keygen()
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
