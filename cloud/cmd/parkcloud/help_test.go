package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestParkcloudAsProcess is not a test of its own: TestCommandLine runs this
// test binary as parkcloud through it.
func TestParkcloudAsProcess(t *testing.T) {
	if os.Getenv("PARKCLOUD_RUN_MAIN") != "1" {
		t.Skip("run by TestCommandLine")
	}
	os.Args = append([]string{"parkcloud"}, strings.Fields(os.Getenv("PARKCLOUD_ARGS"))...)
	main()
	os.Exit(0)
}

// TestCommandLine is finding 17: `parkcloud --help` exited 1 without
// explaining serve|migrate|keygen, and a bare `parkcloud` started serving.
func TestCommandLine(t *testing.T) {
	for _, tt := range []struct {
		args   string
		code   int
		stdout []string
		stderr string
	}{
		// Every configuration variable DESIGN names for parkcloud.
		{args: "--help", stdout: []string{"serve", "migrate", "keygen", "-database-url", "(env DATABASE_URL)", "-database-read-url", "(env DATABASE_READ_URL)",
			"(env REDIS_URL)", "(env MQTT_URL)", "(env STRIPE_SECRET_KEY)", "(env STRIPE_WEBHOOK_SECRET)", "(env STRIPE_API_BASE)",
			"(env PARKGATE_HTTP_ADDR)", "(env PARKGATE_ADMIN_TOKEN)", "(env PARKGATE_HOLD_TTL", "(env PARKGATE_SIGNING_KEY)"}},
		{args: "-h", stdout: []string{"serve", "migrate", "keygen"}},
		{args: "help", stdout: []string{"serve", "migrate", "keygen"}},
		{args: "serve --help", stdout: []string{"serve", "-hold-ttl"}},
		{args: "migrate -help", stdout: []string{"migrate"}},
		{args: "", code: 2, stderr: "no command"},
		{args: "serv", code: 2, stderr: "unknown command"},
		{args: "serve -no-such-flag", code: 2, stderr: "no-such-flag"},
		{args: "keygen extra", code: 2, stderr: "no arguments"},
		{args: "keygen", stdout: []string{"PARKGATE_SIGNING_KEY=", "PARKGATE_CLOUD_PUBLIC_KEYS="}},
	} {
		t.Run(strings.ReplaceAll(tt.args, " ", "_"), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestParkcloudAsProcess$")
			// Nothing to connect to: a command that tried to serve would
			// fail (exit 1), not hang.
			cmd.Env = append(os.Environ(), "PARKCLOUD_RUN_MAIN=1", "PARKCLOUD_ARGS="+tt.args,
				"DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Fatalf("parkcloud %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, stdout.String(), stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("parkcloud %s: stdout lacks %q:\n%s", tt.args, want, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("parkcloud %s: stderr lacks %q:\n%s", tt.args, tt.stderr, stderr.String())
			}
		})
	}
}

// TestHelpHidesSecrets: --help prints each flag's default, and the defaults
// come from the environment, so credentials and URL passwords set there must
// not appear in it (found after finding 16: the startup log was fixed, the
// help page still showed them).
func TestHelpHidesSecrets(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestParkcloudAsProcess$")
	cmd.Env = append(os.Environ(), "PARKCLOUD_RUN_MAIN=1", "PARKCLOUD_ARGS=--help",
		"STRIPE_SECRET_KEY=sk_test_hunter2", "STRIPE_WEBHOOK_SECRET=whsec_hunter2",
		"PARKGATE_ADMIN_TOKEN=admin-hunter2", "PARKGATE_SIGNING_KEY=c2lnbmluZy1odW50ZXIy",
		"DATABASE_URL=postgres://parkgate:hunter2@db.internal/parkgate",
		"REDIS_URL=redis://:hunter2@cache.internal:6379/0", "MQTT_URL=tcp://relay:hunter2@broker:1883")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("parkcloud --help: %v\n%s", err, out)
	}
	for _, secret := range []string{"hunter2", "c2lnbmluZy1odW50ZXIy"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("--help shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "set in STRIPE_SECRET_KEY") || !strings.Contains(string(out), "db.internal") {
		t.Errorf("--help no longer says which settings come from the environment:\n%s", out)
	}
}
