package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestSystemdNotify runs the agent as a Type=notify unit with
// WatchdogSec=0.1 would, against a fake NOTIFY_SOCKET: READY=1 after start,
// WATCHDOG=1 pings from the agent's health loop while the decision path
// answers, none while it is wedged, STOPPING=1 on shutdown.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func(wait time.Duration) string {
		t.Helper()
		buf := make([]byte, 512)
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	const watchdog = 100 * time.Millisecond // pings every 50 ms
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", strconv.Itoa(int(watchdog/time.Microsecond)))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	m := &Main{Stderr: &bytes.Buffer{}}
	// No broker answers on port 1: the agent decides offline, and must
	// still count as healthy.
	if err := m.ParseFlags([]string{"-lot-id", "lot-9", "-cloud-public-keys", testKeys(), "-mqtt-url", "tcp://127.0.0.1:1",
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-cloud-url", "", "-edge-token", ""}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wedged chan struct{}
	entered := make(chan struct{}, 1)
	m.watchdogCheck = func() error {
		mu.Lock()
		w := wedged
		mu.Unlock()
		if w != nil {
			entered <- struct{}{}
			<-w
		}
		return m.agent.Ping()
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = m.Close()
		}
	}()

	if got := next(5 * time.Second); got != "READY=1" {
		t.Fatalf("first message %q, want READY=1", got)
	}
	for i := range 3 {
		if got := next(5 * time.Second); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: %q", i, got)
		}
	}

	mu.Lock()
	wedged = make(chan struct{})
	mu.Unlock()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no health check after the wedge")
	}
	// Pings of earlier checks were sent before this check began.
	for next(time.Millisecond) != "" {
	}
	if got := next(3 * watchdog); got != "" {
		t.Fatalf("the wedged agent sent %q; systemd would never restart it", got)
	}
	mu.Lock()
	close(wedged)
	wedged = nil
	mu.Unlock()
	if got := next(5 * time.Second); got != "WATCHDOG=1" {
		t.Fatalf("after recovery: %q", got)
	}

	closed = true
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		got := next(5 * time.Second)
		if got == "STOPPING=1" {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("on close: %q, want STOPPING=1", got)
		}
	}
}
