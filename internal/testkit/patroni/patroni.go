package patroni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/internal/testkit/pgserver"
	"github.com/parkgate/parkgate/internal/testkit/proc"
)

// User is the superuser every URL connects as, and Database its database
// (with btree_gist), as in pgserver.
const (
	User     = pgserver.User
	Database = pgserver.Database
)

// Options tune the cluster. Zero fields take the default in their comment.
type Options struct {
	// TTL is Patroni's leader key lifetime in seconds: a dead primary is
	// replaced this long after it last renewed the key. Default 10 (Patroni's
	// own default is 30).
	TTL int
	// LoopWait is the seconds between Patroni's HA loops. Default 1.
	LoopWait int
	// RetryTimeout is how long Patroni retries etcd and PostgreSQL before it
	// demotes itself, in seconds. Default 3 (TTL must be at least
	// LoopWait + 2*RetryTimeout).
	RetryTimeout int
	// Strict sets synchronous_mode_strict: with the standby gone the primary
	// stops acknowledging commits rather than going on alone.
	Strict bool
	// StartTimeout bounds each wait for a node to come up. Default 90s.
	StartTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = 10
	}
	if o.LoopWait <= 0 {
		o.LoopWait = 1
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 3
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 90 * time.Second
	}
	return o
}

// Cluster is one etcd member and two Patroni nodes.
type Cluster struct {
	opts   Options
	dir    string
	bin    string // PostgreSQL server binaries
	user   *user.User
	etcd   *process
	etcdEP string // http://127.0.0.1:port
	Nodes  []*Node
}

// Node is one Patroni process and the PostgreSQL it manages.
type Node struct {
	Name    string
	PGPort  int
	APIPort int
	dir     string
	c       *Cluster

	mu sync.Mutex
	p  *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Available reports why a cluster cannot run here, or nil.
func Available() error {
	for _, b := range []string{"patroni", "etcd"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("patroni: %s not installed (Debian packages patroni, etcd-server; deploy/drill.sh installs them)", b)
		}
	}
	_, err := pgserver.BinDir()
	return err
}

// Start runs a cluster for the test and removes it at cleanup; it skips
// the test when the binaries are missing.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skip(err.Error())
	}
	c, err := New(opts)
	if err != nil {
		tb.Fatalf("start patroni cluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// New starts etcd, bootstraps the first node as primary with the database
// Database, clones the second from it, and returns once the second is the
// synchronous standby.
func New(opts Options) (_ *Cluster, err error) {
	opts = opts.withDefaults()
	bin, err := pgserver.BinDir()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "patroni-")
	if err != nil {
		return nil, fmt.Errorf("patroni: dir: %w", err)
	}
	c := &Cluster{opts: opts, dir: root, bin: bin}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.Logs())
			c.Close()
		}
	}()
	if os.Geteuid() == 0 {
		if c.user, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("patroni: running as root needs the postgres OS user: %w", err)
		}
		if err = os.Chmod(root, 0o755); err != nil {
			return nil, fmt.Errorf("patroni: %w", err)
		}
	}
	if err = c.startEtcd(); err != nil {
		return nil, err
	}
	for i := range 2 {
		n := &Node{Name: fmt.Sprintf("pg%d", i+1), dir: filepath.Join(root, fmt.Sprintf("pg%d", i+1)), c: c}
		if n.PGPort, err = proc.FreePort(); err != nil {
			return nil, err
		}
		if n.APIPort, err = proc.FreePort(); err != nil {
			return nil, err
		}
		if err = os.Mkdir(n.dir, 0o700); err != nil {
			return nil, fmt.Errorf("patroni: %w", err)
		}
		if err = c.chown(n.dir); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*opts.StartTimeout)
	defer cancel()
	if err = c.Nodes[0].Start(); err != nil {
		return nil, err
	}
	if _, err = c.WaitLeader(ctx, ""); err != nil {
		return nil, err
	}
	if err = c.createDatabase(ctx); err != nil {
		return nil, err
	}
	if err = c.Nodes[1].Start(); err != nil {
		return nil, err
	}
	if err = c.WaitSyncStandby(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) chown(path string) error {
	if c.user == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.user.Uid)
	gid, _ := strconv.Atoi(c.user.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("patroni: chown %s: %w", path, err)
	}
	return nil
}

func (c *Cluster) startEtcd() error {
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		client, err := proc.FreePort()
		if err != nil {
			return err
		}
		peer, err := proc.FreePort()
		if err != nil {
			return err
		}
		c.etcdEP = "http://127.0.0.1:" + strconv.Itoa(client)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
		data := filepath.Join(c.dir, "etcd")
		_ = os.RemoveAll(data)
		p, err := start(filepath.Join(c.dir, "etcd.log"), nil, "etcd", "--name", "drill", "--data-dir", data,
			"--listen-client-urls", c.etcdEP, "--advertise-client-urls", c.etcdEP,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "drill="+peerURL, "--initial-cluster-state", "new")
		if err != nil {
			return err
		}
		c.etcd = p
		if lastErr = waitHTTP(c.etcdEP+"/health", 30*time.Second, p.done); lastErr == nil {
			return nil
		}
		p.kill()
	}
	return fmt.Errorf("patroni: etcd did not come up: %w", lastErr)
}

// config is the node's patroni.yml. Synchronous mode: Patroni names the
// standby in synchronous_standby_names and promotes only a standby so
// named, so a commit the primary acknowledged (synchronous_commit = on:
// flushed on the standby) survives the primary.
func (n *Node) config() string {
	o := n.c.opts
	return fmt.Sprintf(`scope: drill
name: %[1]s
log:
  level: INFO
restapi:
  listen: 127.0.0.1:%[2]d
  connect_address: 127.0.0.1:%[2]d
etcd3:
  hosts: %[3]s
bootstrap:
  dcs:
    ttl: %[4]d
    loop_wait: %[5]d
    retry_timeout: %[6]d
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: %[7]t
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        synchronous_commit: "on"
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        max_connections: 100
        shared_buffers: 32MB
  initdb:
    - encoding: UTF8
    - no-locale
    - no-sync
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:%[8]d
  connect_address: 127.0.0.1:%[8]d
  data_dir: %[9]s/data
  bin_dir: %[10]s
  pgpass: %[9]s/pgpass
  # The standby's copy starts from a checkpoint: an immediate one, not
  # pg_basebackup's default spread over minutes.
  basebackup:
    - checkpoint: fast
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: %[11]s
      password: %[11]s
    replication:
      username: replicator
      password: replicator
  parameters:
    unix_socket_directories: '%[9]s'
`, n.Name, n.APIPort, strings.TrimPrefix(n.c.etcdEP, "http://"), o.TTL, o.LoopWait, o.RetryTimeout, o.Strict,
		n.PGPort, n.dir, n.c.bin, User)
}

// Start starts the node's Patroni (again, after Kill: it rejoins as a
// standby, rewinding what the dead primary wrote that the new one lacks).
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p != nil {
		return errors.New("patroni: " + n.Name + " already running")
	}
	conf := filepath.Join(n.dir, "patroni.yml")
	if err := os.WriteFile(conf, []byte(n.config()), 0o600); err != nil {
		return fmt.Errorf("patroni: %w", err)
	}
	if err := n.c.chown(conf); err != nil {
		return err
	}
	p, err := start(filepath.Join(n.dir, "patroni.log"), n.c.user, "patroni", conf)
	if err != nil {
		return err
	}
	n.p = p
	return nil
}

// Kill ends the node at once: Patroni and every PostgreSQL process of it
// get SIGKILL, as when its machine dies. The port refuses connections
// after it.
func (n *Node) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	pm := postmasterPID(filepath.Join(n.dir, "data"))
	if n.p != nil {
		n.p.kill()
		n.p = nil
	}
	if pm > 0 {
		// Patroni starts the postmaster in a session of its own: its group
		// holds the postmaster and every backend.
		if pg, err := syscall.Getpgid(pm); err == nil && pg > 1 {
			_ = syscall.Kill(-pg, syscall.SIGKILL)
		}
		_ = syscall.Kill(pm, syscall.SIGKILL)
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pm, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Running reports whether the node's Patroni is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p != nil
}

// URL connects to this node alone.
func (n *Node) URL() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", User, n.PGPort, Database)
}

// Log is the node's Patroni log (which includes PostgreSQL's).
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "patroni.log"))
	return string(b)
}

func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// URL is the multi-host URL a client uses to follow the primary: libpq's
// (and pgx's) target_session_attrs=read-write tries the hosts in order and
// keeps the first that accepts writes.
func (c *Cluster) URL() string {
	hosts := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		hosts[i] = "127.0.0.1:" + strconv.Itoa(n.PGPort)
	}
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=5",
		User, strings.Join(hosts, ","), Database)
}

// Member is one row of Patroni's GET /cluster.
type Member struct {
	Name     string `json:"name"`
	Role     string `json:"role"` // leader, sync_standby, replica
	State    string `json:"state"`
	Timeline int    `json:"timeline"`
	Lag      any    `json:"lag"`
}

// Members asks the first running node's REST API for the cluster's view.
func (c *Cluster) Members() ([]Member, error) {
	var lastErr error = errors.New("patroni: no node running")
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		var out struct {
			Members []Member `json:"members"`
		}
		if lastErr = getJSON(fmt.Sprintf("http://127.0.0.1:%d/cluster", n.APIPort), &out); lastErr == nil {
			return out.Members, nil
		}
	}
	return nil, lastErr
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// WaitLeader waits until a node other than not leads and its PostgreSQL
// takes writes, and returns it.
func (c *Cluster) WaitLeader(ctx context.Context, not string) (*Node, error) {
	var last string
	for {
		if ms, err := c.Members(); err == nil {
			for _, m := range ms {
				if m.Role == "leader" && m.Name != not && m.State == "running" {
					n := c.Node(m.Name)
					if err := writable(ctx, n); err == nil {
						return n, nil
					} else {
						last = err.Error()
					}
				}
			}
			last = fmt.Sprintf("%+v", ms)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("patroni: no leader but %q took writes: %w (last: %s)", not, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitSyncStandby waits until a standby streams as the synchronous one.
func (c *Cluster) WaitSyncStandby(ctx context.Context) error {
	var last string
	for {
		if ms, err := c.Members(); err == nil {
			for _, m := range ms {
				if m.Role == "sync_standby" && (m.State == "running" || m.State == "streaming") {
					return nil
				}
			}
			last = fmt.Sprintf("%+v", ms)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("patroni: no synchronous standby: %w (last: %s)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writable(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", User, n.PGPort)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var rec bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		return err
	}
	if rec {
		return fmt.Errorf("%s is still in recovery", n.Name)
	}
	return nil
}

func (c *Cluster) createDatabase(ctx context.Context) error {
	var leader *Node
	for _, n := range c.Nodes {
		if writable(ctx, n) == nil {
			leader = n
			break
		}
	}
	if leader == nil {
		return errors.New("patroni: no writable node to create the database on")
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", User, leader.PGPort))
	if err != nil {
		return fmt.Errorf("patroni: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+Database); err != nil {
		return fmt.Errorf("patroni: create database: %w", err)
	}
	db, err := pgx.Connect(ctx, leader.URL())
	if err != nil {
		return fmt.Errorf("patroni: %w", err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS btree_gist"); err != nil {
		return fmt.Errorf("patroni: btree_gist: %w", err)
	}
	return nil
}

// Logs is every node's log tail and etcd's, for a failure message.
func (c *Cluster) Logs() string {
	var sb strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&sb, "--- %s (patroni.log, last lines)\n%s\n", n.Name, tail(n.Log(), 30))
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, "etcd.log"))
	fmt.Fprintf(&sb, "--- etcd (last lines)\n%s\n", tail(string(b), 10))
	return sb.String()
}

// Close kills every node and etcd and removes the directory.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		_ = n.Kill()
	}
	if c.etcd != nil {
		c.etcd.kill()
	}
	_ = os.RemoveAll(c.dir)
}

// start runs name with args, output to logPath, in a process group of its
// own, as u when u is set.
func start(logPath string, u *user.User, name string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("patroni: log: %w", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Python's own buffering would hold Patroni's log back from a failure
	// message; PATH keeps Debian's python3 ahead of any other.
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PATH=/usr/bin:/bin:/usr/sbin:/sbin")
	if u != nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir, "USER="+u.Username)
		cmd.Dir = filepath.Dir(logPath)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("patroni: start %s: %w", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: f}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	proc.Signal(p.cmd.Process, p.done, syscall.SIGKILL)
}

var httpc = &http.Client{Timeout: 2 * time.Second}

func getJSON(url string, v any) error {
	resp, err := httpc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func waitHTTP(url string, d time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for {
		resp, err := httpc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-done:
			return errors.New("exited at start")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addr is host:port of a node's PostgreSQL.
func (n *Node) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.PGPort)) }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
