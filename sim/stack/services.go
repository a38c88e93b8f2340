package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// RepoRoot is the directory of the go.mod above the working directory, or
// the working directory when there is none.
func RepoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return wd
		}
		d = parent
	}
}

// findServices looks for deploy/services.sh in the module above the working
// directory, then beside the bin/ directory of the running executable.
func findServices() string {
	cands := []string{filepath.Join(RepoRoot(), "deploy", "services.sh")}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(filepath.Dir(exe)), "deploy", "services.sh"))
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	return ""
}

func (s *Stack) services(ctx context.Context) error {
	script := s.opts.ServicesScript
	if script == "" {
		script = findServices()
		if script == "" {
			return errors.New("stack: deploy/services.sh not found here or next to the executable's bin/; " +
				"run from the repository, or start the services yourself and pass --services=false")
		}
	}
	s.logf("services: %s", script)
	cmd := exec.CommandContext(ctx, "bash", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("stack: %s: %w\n%s", script, err, out.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line != "" && !strings.Contains(line, "=") {
			s.logf("  %s", line)
		}
	}
	return nil
}

func (s *Stack) schema(ctx context.Context) error {
	s.Schema = "sim_" + time.Now().UTC().Format("0102_150405") + "_" + randHex(3)
	var err error
	if s.DatabaseURL, err = postgres.CreateSchema(ctx, s.opts.DatabaseURL, s.Schema); err != nil {
		return fmt.Errorf("stack: %w (is Postgres up? deploy/services.sh)", err)
	}
	// Two connections: the simulator only reads, after the run.
	if s.DB, err = postgres.Open(ctx, s.DatabaseURL, 2); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	s.logf("postgres: schema %s", s.Schema)
	return nil
}

func (s *Stack) broker() error {
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := proc.FreePort()
		if err != nil {
			return err
		}
		b, err := broker.New(filepath.Join(s.Dir, "broker"), port)
		if err == nil {
			s.Broker = b
			s.logf("mosquitto: %s", b.URL())
			return nil
		}
		lastErr = err
	}
	return fmt.Errorf("stack: mosquitto: %w", lastErr)
}

const webhookSecret = "whsec_parksim"

func (s *Stack) stripe() error {
	// The gate learns the cloud's address once the cloud listens.
	s.Webhooks = NewWebhookGate("")
	gateURL, err := s.serve(s.Webhooks)
	if err != nil {
		return fmt.Errorf("stack: webhook gate: %w", err)
	}
	s.Stripe = stripefake.New(stripefake.Options{
		WebhookURL:    gateURL,
		WebhookSecret: webhookSecret,
		// Quick retries: a run lasts a minute, not Stripe's three days.
		RetryBase:   200 * time.Millisecond,
		RetryCap:    2 * time.Second,
		MaxAttempts: 30,
		// The gate may hold a delivery for as long as a hold lasts.
		WebhookClient: &http.Client{Timeout: 10 * time.Minute,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	})
	if s.StripeURL, err = s.serve(s.Stripe); err != nil {
		return fmt.Errorf("stack: stripe stand-in: %w", err)
	}
	s.logf("stripe stand-in: %s (webhooks through %s)", s.StripeURL, gateURL)
	return nil
}

// RestartBroker stops Mosquitto gracefully and starts it again on the same
// port with its persistence, as an operator's restart would.
func (s *Stack) RestartBroker() error { return s.Broker.Restart() }
