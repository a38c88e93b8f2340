package sdnotify_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge/internal/sdnotify"
)

// fakeSystemd is a NOTIFY_SOCKET that records what arrives, as systemd's
// own socket would receive it.
type fakeSystemd struct {
	conn *net.UnixConn
}

func listen(t *testing.T) *fakeSystemd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &fakeSystemd{conn: conn}
}

// next returns the next datagram, or "" when none arrives within wait.
func (f *fakeSystemd) next(t *testing.T, wait time.Duration) string {
	t.Helper()
	buf := make([]byte, 512)
	_ = f.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := f.conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestReadyAndStopping(t *testing.T) {
	sd := listen(t)
	if sent, err := sdnotify.Ready(); !sent || err != nil {
		t.Fatalf("Ready: %v %v", sent, err)
	}
	if got := sd.next(t, 5*time.Second); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
	if sent, err := sdnotify.Stopping(); !sent || err != nil {
		t.Fatalf("Stopping: %v %v", sent, err)
	}
	if got := sd.next(t, 5*time.Second); got != "STOPPING=1" {
		t.Fatalf("got %q", got)
	}
}

func TestOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	if sent, err := sdnotify.Ready(); sent || err != nil {
		t.Fatalf("Ready without a socket: %v %v", sent, err)
	}
	if d, err := sdnotify.WatchdogInterval(); d != 0 || err != nil {
		t.Fatalf("WatchdogInterval without a watchdog: %v %v", d, err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d, err := sdnotify.WatchdogInterval(); d != 15*time.Second || err != nil {
		t.Fatalf("WatchdogSec=30: %v %v", d, err)
	}
	// After a fork the child sees its parent's variables: not its watchdog.
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d, err := sdnotify.WatchdogInterval(); d != 0 || err != nil {
		t.Fatalf("another process's watchdog: %v %v", d, err)
	}
}

// wedgeable is a health check a test can make hang, as a decision path
// stuck on a lock would.
type wedgeable struct {
	mu      sync.Mutex
	release chan struct{} // non-nil while wedged
	entered chan struct{} // gets a value when a check starts to hang
}

func (w *wedgeable) check() error {
	w.mu.Lock()
	release := w.release
	w.mu.Unlock()
	if release != nil {
		w.entered <- struct{}{}
		<-release
	}
	return nil
}

func (w *wedgeable) wedge() {
	w.mu.Lock()
	w.release = make(chan struct{})
	w.mu.Unlock()
}

func (w *wedgeable) unwedge() {
	w.mu.Lock()
	close(w.release)
	w.release = nil
	w.mu.Unlock()
}

// TestWatchdog runs the ping loop against a fake NOTIFY_SOCKET: pings arrive
// while the check answers, stop while it hangs, and resume after.
func TestWatchdog(t *testing.T) {
	sd := listen(t)
	const every = 20 * time.Millisecond
	hc := &wedgeable{entered: make(chan struct{}, 1)}
	wd := &sdnotify.Watchdog{Interval: every, Check: hc.check}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); wd.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for i := range 3 {
		if got := sd.next(t, 5*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: got %q", i, got)
		}
	}

	hc.wedge()
	select {
	case <-hc.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no check started after the wedge")
	}
	// Pings of checks that finished before this one started were sent
	// before it started: drain them; after that nothing may arrive.
	for sd.next(t, time.Millisecond) != "" {
	}
	if got := sd.next(t, 10*every); got != "" {
		t.Fatalf("a wedged agent pinged: %q", got)
	}

	hc.unwedge()
	if got := sd.next(t, 5*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("after recovery: got %q", got)
	}
}

// TestWatchdogCheckError: a check that answers with an error withholds the
// ping just as one that hangs.
func TestWatchdogCheckError(t *testing.T) {
	var mu sync.Mutex
	fail := false
	pings := make(chan struct{}, 100)
	calls := make(chan struct{}, 100)
	wd := &sdnotify.Watchdog{Interval: time.Millisecond,
		Check: func() error {
			mu.Lock()
			defer mu.Unlock()
			calls <- struct{}{}
			if fail {
				return errors.New("store closed")
			}
			return nil
		},
		Notify: func(string) error { pings <- struct{}{}; return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); wd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-pings
	mu.Lock()
	fail = true
	mu.Unlock()
	// Checks hold mu, so every check that saw fail=false is in calls by
	// now; the next one fails, and by its start every earlier ping is sent.
	for len(calls) > 0 {
		<-calls
	}
	<-calls
	for len(pings) > 0 {
		<-pings
	}
	for range 5 {
		<-calls
	}
	if n := len(pings); n != 0 {
		t.Fatalf("%d pings while the check failed", n)
	}
}
