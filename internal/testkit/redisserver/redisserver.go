package redisserver

import (
	"errors"
	"fmt"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the redis-server executable; REDIS_SERVER overrides it.
var Binary = "/usr/bin/redis-server"

func init() {
	if b := os.Getenv("REDIS_SERVER"); b != "" {
		Binary = b
	}
}

// Server is one redis-server process.
type Server struct {
	dir   string
	port  int
	extra []string // more redis-server arguments (NewWith)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *proc.Buffer
}

// Start runs a server for the test and stops it at cleanup. It skips the
// test when redis-server is not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if _, err := os.Stat(Binary); err != nil {
		tb.Skipf("redis-server not installed at %s", Binary)
	}
	s, err := New(tb.TempDir())
	if err != nil {
		tb.Fatalf("start private redis: %v", err)
	}
	tb.Cleanup(func() { _ = s.Stop() })
	return s
}

// New starts redis-server in dir on a free port.
func New(dir string) (*Server, error) { return NewWith(dir) }

// NewWith is New with more redis-server arguments, such as
// "--replicaof", host, port for a replica.
func NewWith(dir string, args ...string) (*Server, error) {
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{dir: dir, port: port, extra: args}
		if lastErr = s.Start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// URL is the server's address for go-redis, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("redisserver: already running")
	}
	log := &proc.Buffer{}
	cmd := exec.Command(Binary, append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--save", "", "--appendonly", "no", "--protected-mode", "no"}, s.extra...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			s.cmd, s.done, s.log = cmd, done, log
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server not accepting on %s: %w", s.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the server with SIGTERM.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

// Restart stops the server and starts it again on the same port, empty.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Pid is the running process's id (0 when stopped), for reading its CPU
// time from /proc.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	proc.Signal(s.cmd.Process, s.done, sig)
	s.cmd = nil
	return nil
}
