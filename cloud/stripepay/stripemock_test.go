package stripepay

import (
	"bufio"
	"context"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findStripeMock looks where `go install github.com/stripe/stripe-mock@...`
// puts it, after PATH.
func findStripeMock() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	dirs := []string{os.Getenv("GOBIN")}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// startStripeMock runs stripe-mock on loopback ports of the kernel's choosing
// and returns its HTTP base URL.
func startStripeMock(t *testing.T, bin string) string {
	t.Helper()
	// Both listeners on loopback: stripe-mock binds HTTPS to all interfaces
	// on 12112 unless told otherwise. No -strict-version-check: its spec is
	// newer than stripe-go v76's API version.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(15 * time.Second):
		t.Fatal("stripe-mock did not report its HTTP address")
		return ""
	}
}

// TestAgainstStripeMock checks request shapes against Stripe's OpenAPI spec.
// stripe-mock answers with fixtures, so only "accepted and decodable" is
// checked; behaviour is tested against stripefake.
func TestAgainstStripeMock(t *testing.T) {
	t.Parallel()
	bin := findStripeMock()
	if bin == "" {
		t.Skip("stripe-mock not found on PATH or in GOPATH/bin; install with: go install github.com/stripe/stripe-mock@v0.203.0")
	}
	c := newClient(t, startStripeMock(t, bin), 10*time.Second)
	ctx := context.Background()

	s, err := c.CreateCheckoutSession(ctx, checkout("res-mock", time.Now().Add(10*time.Minute)))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if s.ID == "" {
		t.Errorf("session %+v", s)
	}
	if err := c.ExpireSession(ctx, s.ID, "expire:res-mock"); err != nil {
		t.Errorf("expire: %v", err)
	}
	id, err := c.Refund(ctx, "pi_mock", "refund:res-mock")
	if err != nil || id == "" {
		t.Errorf("refund: %q %v", id, err)
	}
}
