// Package proc holds what the testkit's private servers (broker, Postgres,
// Redis) share about running a server as a child process: a free loopback
// port, a buffer for its output that exec may write from two goroutines, and
// ending it with a signal, falling back to SIGKILL if it will not go.
package proc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Buffer collects a process's output; exec copies stdout and stderr from
// their own goroutines, so writes are serialised.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Signal sends sig to p and waits for done (closed when p has exited); a
// process still there after 10 s is killed, so a test never hangs on a
// server that ignores SIGTERM.
func Signal(p *os.Process, done <-chan struct{}, sig syscall.Signal) {
	_ = p.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		<-done
	}
}
