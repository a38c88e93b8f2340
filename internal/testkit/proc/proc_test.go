package proc

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortBelowEphemeral: ports come from below the ephemeral range,
// where no outgoing connection can take them before the child binds, are
// free when handed out, and are never handed out twice.
func TestFreePortBelowEphemeral(t *testing.T) {
	lo := ephemeralLow()
	if lo-portFloor < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it", lo)
	}
	seen := map[int]bool{}
	for range 300 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < portFloor || p >= lo {
			t.Fatalf("port %d outside [%d, %d)", p, portFloor, lo)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	// And free indeed: the last one binds.
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("bind the port handed out: %v", err)
	}
	l.Close()
}
