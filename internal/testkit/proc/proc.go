// Package proc holds what the testkit's private servers (broker, Postgres,
// Redis) share about running a server as a child process: a free loopback
// port, a buffer for its output that exec may write from two goroutines, and
// ending it with a signal, falling back to SIGKILL if it will not go.
package proc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FreePort returns a loopback port that is free now, for a child process
// to bind a moment later. It is picked below the kernel's ephemeral range
// (ip_local_port_range), where only an explicit bind can take it: a port
// from that range (what listening on port 0 gives) may be handed to any
// outgoing connection on the machine before the child binds it, and the
// suite opens thousands a second. The second Patroni node of the failover
// drill, started seconds after its ports were picked, failed so in make
// test ("Address already in use"). One process never hands a port out
// twice; between processes the pick is random over some 17,000 ports, and
// each is checked free.
func FreePort() (int, error) {
	lo := ephemeralLow()
	if lo-portFloor >= 1000 {
		for range 200 {
			p := portFloor + rand.IntN(lo-portFloor)
			if !handOut(p) {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue // bound by someone: stays handed out, never tried again
			}
			l.Close()
			return p, nil
		}
	}
	// No room below the range (or none free): the kernel's pick.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	handOut(p)
	return p, nil
}

// FreeAddr is FreePort as a loopback address, "127.0.0.1:PORT", the form
// a child's listen flag or environment takes.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// portFloor keeps FreePort clear of the well-known and registered ports
// that services on a developer's machine commonly listen on.
const portFloor = 15000

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// handOut records p as handed out and reports whether it was not before.
func handOut(p int) bool {
	handedMu.Lock()
	defer handedMu.Unlock()
	if handed[p] {
		return false
	}
	handed[p] = true
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range, Linux's
// default where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 {
		return 32768
	}
	return lo
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
