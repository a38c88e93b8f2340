package guard_test

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"github.com/parkgate/parkgate/internal/testkit/rediskeys"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// testRedisURL is the shared Redis the tests use; every test keeps to its
// own random namespace, so they run beside each other and beside other
// packages' tests, and clean up only their own keys.
func testRedisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// testRedisAddr is host:port of testRedisURL, for the proxy.
func testRedisAddr(t *testing.T) string {
	opt, err := redis.ParseURL(testRedisURL())
	if err != nil {
		t.Fatal(err)
	}
	return opt.Addr
}

// bundle is what a test inspects besides the Guard.
type bundle struct {
	rdb  *redis.Client // a plain client on the same Redis, for looking at keys
	ns   string
	opts guard.Options
}

// setup returns a Guard on the shared test Redis in a fresh namespace.
func setup(t testing.TB, opts guard.Options) (*guard.Guard, *bundle) {
	t.Helper()
	if opts.Namespace == "" {
		opts.Namespace = "guardtest-" + rand.Text()
	}
	if opts.OpTimeout == 0 {
		// These tests are about Redis answering: on a loaded machine a
		// 50ms deadline would send calls to the fallbacks.
		opts.OpTimeout = 5 * time.Second
	}
	rdb := newClient(t, testRedisURL())
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v (start it, or set TEST_REDIS_URL)", testRedisURL(), err)
	}
	t.Cleanup(func() { deleteNamespace(t, rdb, opts.Namespace) })
	return guard.New(rdb, opts), &bundle{rdb: rdb, ns: opts.Namespace, opts: opts}
}

// replica returns a second Guard on the same Redis and namespace, as another
// API replica would have.
func (b *bundle) replica(t *testing.T) *guard.Guard {
	t.Helper()
	return guard.New(newClient(t, testRedisURL()), b.opts)
}

func newClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	rdb, err := guard.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// deleteNamespace removes this test's keys, and no one else's.
func deleteNamespace(t testing.TB, rdb *redis.Client, ns string) {
	if _, err := rediskeys.Drop(context.Background(), rdb, ns); err != nil {
		t.Logf("delete %s: %v", ns, err)
	}
}

// runGuard runs g.Run until the test ends.
func runGuard(t *testing.T, g *guard.Guard) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue reads a counter or gauge from the default registry.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func matchLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// freePort returns a loopback port nothing listens on (at the moment),
// which no outgoing connection can take while the test's Redis is stopped
// and started again on it (see proc.FreePort).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// redisServer is a redis-server process of the test's own, which it may
// stop and start without disturbing anyone else's Redis.
type redisServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	s := &redisServer{t: t, port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(s.port) + "/0" }

func (s *redisServer) start() {
	s.t.Helper()
	// No persistence: what the guard keeps can all be rebuilt, and a
	// restart must come back empty.
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.port), MaxRetries: -1})
	defer rdb.Close()
	waitFor(s.t, "redis-server to answer", 10*time.Second, func() bool {
		return rdb.Ping(context.Background()).Err() == nil
	})
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// proxy forwards TCP to a Redis and can cut every connection (as a network
// partition would) while that Redis keeps its data, or stall them (as a
// hung Redis would).
type proxy struct {
	t      *testing.T
	target string
	l      net.Listener
	addr   string

	mu    sync.Mutex
	conns map[net.Conn]bool
	cut   bool
	stall atomic.Bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: make(map[net.Conn]bool)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.l, p.addr = l, l.Addr().String()
	go p.serve(l)
	t.Cleanup(func() { p.setCut(true); _ = p.l.Close() })
	return p
}

func (p *proxy) url() string { return "redis://" + p.addr + "/0" }

func (p *proxy) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.stall.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// setCut drops every connection and refuses new ones (cut true), or lets
// them through again.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
		clear(p.conns)
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	if _, err := guard.NewClient("http://nope"); err == nil {
		t.Fatal("NewClient accepted a non-redis URL")
	}
	rdb := newClient(t, testRedisURL())
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	// What keeps a dead Redis from holding bookings: deadlines honoured,
	// no retries.
	if o := rdb.Options(); !o.ContextTimeoutEnabled || o.MaxRetries != 0 {
		t.Fatalf("ContextTimeoutEnabled %v, MaxRetries %d", o.ContextTimeoutEnabled, o.MaxRetries)
	}
}
