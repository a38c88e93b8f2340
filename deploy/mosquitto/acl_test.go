package mosquitto

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/proc"
)

// TestACL runs acl-test.sh against a private broker on a free loopback port.
// It skips only when mosquitto is not installed; a missing client tool or
// openssl is a failure, as the script reports it.
func TestACL(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "acl-test.sh", strconv.Itoa(freePort(t))).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("acl-test.sh: %v", err)
	}
}

// freePort is a loopback port nothing listens on as it returns, for the
// broker to take a moment later (see proc.FreePort).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
