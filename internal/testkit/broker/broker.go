package broker

import (
	"errors"
	"fmt"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the Mosquitto executable; MOSQUITTO overrides it.
var Binary = "/usr/sbin/mosquitto"

func init() {
	if b := os.Getenv("MOSQUITTO"); b != "" {
		Binary = b
	}
}

// Broker is one Mosquitto process and its files.
type Broker struct {
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *proc.Buffer
}

// Start runs a broker for the test in a temporary directory and stops it at
// cleanup. It skips the test when Mosquitto is not installed.
func Start(tb testing.TB) *Broker {
	tb.Helper()
	if _, err := os.Stat(Binary); err != nil {
		tb.Skipf("mosquitto not installed at %s", Binary)
	}
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := proc.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		b, err := New(tb.TempDir(), port)
		if err == nil {
			tb.Cleanup(func() { _ = b.Stop() })
			return b
		}
		lastErr = err
	}
	tb.Fatalf("start mosquitto: %v", lastErr)
	return nil
}

// New writes a configuration into dir and starts Mosquitto on
// 127.0.0.1:port, returning once the port accepts connections.
func New(dir string, port int) (*Broker, error) {
	return NewConfig(dir, port, func(port int, dataDir string) string {
		return fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence true
persistence_location %s/
persistence_file mosquitto.db
autosave_interval 5
max_queued_messages 100000
max_inflight_messages 100
persistent_client_expiration 1d
log_dest stderr
log_type error
log_type warning
log_type notice
`, port, dataDir)
	})
}

// NewConfig starts Mosquitto with the configuration conf returns for the
// port and the persistence directory (e.g. the production parkgate.conf
// with its paths rewritten), so a test or the fleet run can put the shipped
// configuration under load. Run as root, "user root" is added: Mosquitto
// would otherwise drop to its own user, which cannot write a temporary
// directory.
func NewConfig(dir string, port int, conf func(port int, dataDir string) string) (*Broker, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("broker dir: %w", err)
	}
	b := &Broker{dir: dir, port: port}
	if err := os.MkdirAll(b.dataDir(), 0o755); err != nil {
		return nil, fmt.Errorf("broker dir: %w", err)
	}
	text := conf(port, b.dataDir())
	if os.Geteuid() == 0 {
		text += "user root\n"
	}
	if err := os.WriteFile(b.confPath(), []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// URL is the broker's address for paho, e.g. tcp://127.0.0.1:41883.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Addr is host:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Dir is the broker's directory (configuration, persistence).
func (b *Broker) Dir() string { return b.dir }

// Log returns what Mosquitto has written to stderr since it last started.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.log == nil {
		return ""
	}
	return b.log.String()
}

func (b *Broker) dataDir() string  { return filepath.Join(b.dir, "data") }
func (b *Broker) confPath() string { return filepath.Join(b.dir, "mosquitto.conf") }

func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return errors.New("broker: already running")
	}
	log := &proc.Buffer{}
	cmd := exec.Command(Binary, "-c", b.confPath())
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.cmd, b.done, b.log = cmd, done, log

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			b.cmd = nil
			return fmt.Errorf("mosquitto exited at start: %s", log.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			b.cmd = nil
			return fmt.Errorf("mosquitto not accepting on %s: %w", b.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends Mosquitto with SIGTERM, which saves its persistence file.
func (b *Broker) Stop() error { return b.signal(syscall.SIGTERM) }

// Kill ends Mosquitto with SIGKILL, as a crash would: what it had not saved
// is lost.
func (b *Broker) Kill() error { return b.signal(syscall.SIGKILL) }

// Restart stops Mosquitto gracefully and starts it again on the same port
// with the same persistence.
func (b *Broker) Restart() error {
	if err := b.Stop(); err != nil {
		return err
	}
	return b.start()
}

// Reload sends SIGHUP, on which Mosquitto re-reads its password and ACL
// files (what `systemctl reload mosquitto` does when a lot is added).
func (b *Broker) Reload() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return errors.New("broker: not running")
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("broker: reload: %w", err)
	}
	return nil
}

// Pid is the running process's id (0 when stopped), for reading its CPU
// time and memory from /proc.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Running reports whether the process is up.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

func (b *Broker) signal(sig syscall.Signal) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	proc.Signal(b.cmd.Process, b.done, sig)
	b.cmd = nil
	return nil
}
