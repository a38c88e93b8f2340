package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parkgate/parkgate/internal/testkit/proc"
	"github.com/parkgate/parkgate/internal/testkit/redisserver"
)

// MasterName is the name the sentinels monitor the master by.
const MasterName = "drill"

// Binary is the redis-sentinel executable; REDIS_SENTINEL overrides it.
var Binary = "/usr/bin/redis-sentinel"

func init() {
	if b := os.Getenv("REDIS_SENTINEL"); b != "" {
		Binary = b
	}
}

// Options tune the group. Zero fields take the default in their comment.
type Options struct {
	// DownAfter is how long the master must not answer before a sentinel
	// takes it for down. Default 1s (redis' own default is 30s).
	DownAfter time.Duration
	// FailoverTimeout bounds one failover attempt. Default 5s.
	FailoverTimeout time.Duration
}

// Group is a master, a replica and three sentinels.
type Group struct {
	opts      Options
	dir       string
	servers   map[string]*redisserver.Server // by host:port
	sentinels []*sentinelProc
}

type sentinelProc struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  *proc.Buffer
}

// Available reports why a group cannot run here, or nil.
func Available() error {
	for _, b := range []string{redisserver.Binary, Binary} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("sentinel: %s not installed (Debian packages redis-server, redis-sentinel; deploy/drill.sh installs them)", b)
		}
	}
	return nil
}

// Start runs a group for the test and stops it at cleanup; it skips the
// test when the binaries are missing.
func Start(tb testing.TB, opts Options) *Group {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skip(err.Error())
	}
	g, err := New(tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("start sentinel group: %v", err)
	}
	tb.Cleanup(g.Close)
	return g
}

// New starts the group in dir and returns once the replica streams from
// the master and the sentinels know each other and have a quorum.
func New(dir string, opts Options) (_ *Group, err error) {
	if opts.DownAfter <= 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout <= 0 {
		opts.FailoverTimeout = 5 * time.Second
	}
	g := &Group{opts: opts, dir: dir, servers: map[string]*redisserver.Server{}}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, g.Logs())
			g.Close()
		}
	}()
	mdir, rdir := filepath.Join(dir, "master"), filepath.Join(dir, "replica")
	for _, d := range []string{mdir, rdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	master, err := redisserver.New(mdir)
	if err != nil {
		return nil, err
	}
	g.servers[master.Addr()] = master
	host, port, _ := net.SplitHostPort(master.Addr())
	replica, err := redisserver.NewWith(rdir, "--replicaof", host, port)
	if err != nil {
		return nil, err
	}
	g.servers[replica.Addr()] = replica
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitFor(ctx, "replica link up", func() error {
		info, err := client(replica.Addr()).Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return errors.New("link not up")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i := range 3 {
		if err := g.startSentinel(i, host, port); err != nil {
			return nil, err
		}
	}
	for _, s := range g.sentinels {
		if err := waitFor(ctx, "sentinel quorum at "+s.addr, func() error {
			return client(s.addr).Do(ctx, "SENTINEL", "CKQUORUM", MasterName).Err()
		}); err != nil {
			return nil, err
		}
		if err := waitFor(ctx, "sentinel at "+s.addr+" to know the replica and the others", func() error {
			m, err := client(s.addr).Do(ctx, "SENTINEL", "MASTER", MasterName).Result()
			if err != nil {
				return err
			}
			f := fields(m)
			if f["num-slaves"] != "1" || f["num-other-sentinels"] != "2" {
				return fmt.Errorf("replicas %s, other sentinels %s", f["num-slaves"], f["num-other-sentinels"])
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *Group) startSentinel(i int, masterHost, masterPort string) error {
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := proc.FreePort()
		if err != nil {
			return err
		}
		d := filepath.Join(g.dir, fmt.Sprintf("sentinel%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		// A sentinel rewrites its file with what it learns: each needs its own.
		conf := filepath.Join(d, "sentinel.conf")
		body := fmt.Sprintf("port %[1]d\nbind 127.0.0.1\nprotected-mode no\ndir %[2]s\n"+
			"sentinel monitor %[3]s %[4]s %[5]s 2\nsentinel down-after-milliseconds %[3]s %[6]d\n"+
			"sentinel failover-timeout %[3]s %[7]d\nsentinel parallel-syncs %[3]s 1\n",
			port, d, MasterName, masterHost, masterPort, g.opts.DownAfter.Milliseconds(), g.opts.FailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return err
		}
		log := &proc.Buffer{}
		cmd := exec.Command(Binary, conf)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("sentinel: start: %w", err)
		}
		s := &sentinelProc{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{}), log: log}
		go func() { _ = cmd.Wait(); close(s.done) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lastErr = waitFor(ctx, "sentinel at "+s.addr, func() error {
			select {
			case <-s.done:
				return errors.New("exited: " + log.String())
			default:
			}
			return client(s.addr).Ping(ctx).Err()
		})
		cancel()
		if lastErr == nil {
			g.sentinels = append(g.sentinels, s)
			return nil
		}
		proc.Signal(cmd.Process, s.done, syscall.SIGKILL)
	}
	return lastErr
}

// URL is the REDIS_URL a client uses to follow the master through the
// sentinels: go-redis' failover form, the first sentinel as the host, the
// others as addr parameters.
func (g *Group) URL() string {
	u := "redis://" + g.sentinels[0].addr + "/0?master_name=" + MasterName
	for _, s := range g.sentinels[1:] {
		u += "&addr=" + s.addr
	}
	return u
}

// Master asks a sentinel for the master's address.
func (g *Group) Master(ctx context.Context) (string, error) {
	var lastErr error
	for _, s := range g.sentinels {
		addr, err := client(s.addr).Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName).StringSlice()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("sentinel: no master: %w", lastErr)
}

// Server returns the redis-server at addr, or nil.
func (g *Group) Server(addr string) *redisserver.Server { return g.servers[addr] }

// KillMaster ends the current master with SIGKILL and returns its address.
func (g *Group) KillMaster(ctx context.Context) (string, error) {
	addr, err := g.Master(ctx)
	if err != nil {
		return "", err
	}
	s := g.servers[addr]
	if s == nil {
		return "", fmt.Errorf("sentinel: master %s is none of ours", addr)
	}
	return addr, s.Kill()
}

// WaitMaster waits until the sentinels name a master other than old and
// it answers as a master, and returns its address.
func (g *Group) WaitMaster(ctx context.Context, old string) (string, error) {
	var addr string
	err := waitFor(ctx, "a new master", func() error {
		a, err := g.Master(ctx)
		if err != nil {
			return err
		}
		if a == old {
			return errors.New("still " + old)
		}
		info, err := client(a).Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return errors.New(a + " is not master yet")
		}
		addr = a
		return nil
	})
	return addr, err
}

// Logs is each sentinel's output, for a failure message.
func (g *Group) Logs() string {
	var sb strings.Builder
	for i, s := range g.sentinels {
		fmt.Fprintf(&sb, "--- sentinel %d (%s)\n%s\n", i, s.addr, s.log.String())
	}
	return sb.String()
}

// Close stops the sentinels and the servers.
func (g *Group) Close() {
	for _, s := range g.sentinels {
		proc.Signal(s.cmd.Process, s.done, syscall.SIGTERM)
	}
	for _, s := range g.servers {
		_ = s.Kill()
	}
}

func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1,
		PoolSize: 1})
}

// fields turns SENTINEL MASTER's flat list (or RESP3 map) into a map.
func fields(v any) map[string]string {
	out := map[string]string{}
	switch m := v.(type) {
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			out[fmt.Sprint(m[i])] = fmt.Sprint(m[i+1])
		}
	case map[any]any:
		for k, v := range m {
			out[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	}
	return out
}

func waitFor(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sentinel: waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
