package mosquitto

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
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

// freePort is a loopback port nothing listens on as it returns: the broker
// takes it a moment later (another process could too, which fails loudly).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
