package pgserver

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is one private PostgreSQL cluster.
type Server struct {
	bin  string // directory of initdb, pg_ctl, postgres, psql
	dir  string // everything: data/, the socket, the log
	port int
	user *user.User // the OS user the server runs as; nil: ourselves

	mu      sync.Mutex
	running bool
}

// User is the superuser the URL connects as, and Database its database.
const (
	User     = "parkgate"
	Database = "parkgate"
)

// BinDir finds the server binaries: PG_BINDIR, then the newest
// /usr/lib/postgresql/*/bin that has initdb.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgserver: no PostgreSQL server binaries (initdb) under /usr/lib/postgresql/*/bin; " +
		"install Debian's postgresql package or set PG_BINDIR")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start runs a private server for the test and stops it at cleanup. It
// skips the test when the server binaries are not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if _, err := BinDir(); err != nil {
		tb.Skip(err.Error())
	}
	s, err := New("")
	if err != nil {
		tb.Fatalf("start private postgres: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// New initialises a cluster in a new directory under dir ("" is the
// system's temporary directory), starts it on a free port, and creates the
// database Database with the btree_gist extension.
func New(dir string) (_ *Server, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(dir, "pgserver-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: dir: %w", err)
	}
	s := &Server{bin: bin, dir: root}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if os.Geteuid() == 0 {
		if s.user, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("pgserver: running as root needs the postgres OS user: %w", err)
		}
		// The server's user must reach its directory through ours.
		if err = os.Chmod(root, 0o755); err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		if err = s.chown(root); err != nil {
			return nil, err
		}
	}
	if out, err := s.run("initdb", "-D", s.dataDir(), "-U", User, "-A", "trust", "-E", "UTF8",
		"--no-locale", "--no-sync"); err != nil {
		return nil, fmt.Errorf("pgserver: initdb: %w\n%s", err, out)
	}
	conf := "listen_addresses = '127.0.0.1'\n" +
		"unix_socket_directories = '" + s.dir + "'\n" +
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" +
		"max_connections = 100\nshared_buffers = 32MB\n"
	f, err := os.OpenFile(filepath.Join(s.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("pgserver: conf: %w", err)
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pgserver: conf: %w", err)
	}
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		if s.port, err = proc.FreePort(); err != nil {
			return nil, err
		}
		if lastErr = s.Start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	for _, sql := range []string{"CREATE DATABASE " + Database, ""} {
		db := "postgres"
		if sql == "" {
			db, sql = Database, "CREATE EXTENSION IF NOT EXISTS btree_gist"
		}
		if out, err := s.run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", s.dir, "-p", strconv.Itoa(s.port),
			"-U", User, "-d", db, "-c", sql); err != nil {
			return nil, fmt.Errorf("pgserver: %s: %w\n%s", sql, err, out)
		}
	}
	return s, nil
}

// URL is a connection URL for Database over TCP.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", User, s.Addr(), Database)
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir is the server's directory (data, socket, log).
func (s *Server) Dir() string { return s.dir }

// Pid is the postmaster's process id from its postmaster.pid (0 when it
// is not running); its backends are its children.
func (s *Server) Pid() int {
	b, err := os.ReadFile(filepath.Join(s.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// Log returns the server's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath())
	return string(b)
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("pgserver: already running")
	}
	out, err := s.run("pg_ctl", "-D", s.dataDir(), "-l", s.logPath(), "-w", "-t", "60",
		"-o", "-p "+strconv.Itoa(s.port), "start")
	if err != nil {
		return fmt.Errorf("pgserver: start on port %d: %w\n%s\n%s", s.port, err, out, tail(s.Log(), 10))
	}
	s.running = true
	return nil
}

// Stop shuts the server down: fast mode, as an operator's restart does
// (open transactions are rolled back, clients are disconnected).
func (s *Server) Stop() error { return s.stop("fast") }

// Kill stops the server without a checkpoint, as a crash would; the next
// Start recovers from the WAL.
func (s *Server) Kill() error { return s.stop("immediate") }

func (s *Server) stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	out, err := s.run("pg_ctl", "-D", s.dataDir(), "-m", mode, "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("pgserver: stop: %w\n%s", err, out)
	}
	s.running = false
	return nil
}

// Restart stops the server and starts it again on the same port with the
// same data.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Running reports whether the server is up, as far as Start and Stop know.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Kill()
	if rmErr := os.RemoveAll(s.dir); err == nil {
		err = rmErr
	}
	return err
}

// run runs one of the server's binaries, as the postgres OS user when we
// are root.
func (s *Server) run(name string, args ...string) (string, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.user != nil {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// pg_ctl's server inherits these; it must not keep our pipes open, or
	// Output would wait for the server to end.
	var out bytes.Buffer
	f, err := os.CreateTemp("", "pgserver-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = s.dir
	err = cmd.Run()
	_, _ = f.Seek(0, 0)
	_, _ = out.ReadFrom(f)
	return out.String(), err
}

func (s *Server) chown(path string) error {
	uid, _ := strconv.Atoi(s.user.Uid)
	gid, _ := strconv.Atoi(s.user.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("pgserver: chown %s: %w", path, err)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
