package stack

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// DefaultDatabaseURL and DefaultRedisURL are what deploy/services.sh makes
// ready.
const (
	DefaultDatabaseURL = "postgres://parkgate:parkgate@127.0.0.1:5432/parkgate?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// LotSpec is one lot to create.
type LotSpec struct {
	Name  string
	Spots int
	// Gates as PARKGATE_GATES takes them; "entry-1=entry,exit-1=exit" when
	// empty.
	Gates string
}

// Options configure a Stack.
type Options struct {
	// Dir holds the logs and data of the run's processes. Empty makes a
	// temporary directory, removed by Close unless Keep.
	Dir string
	// CloudBin and EdgeBin are the parkcloud and parkedge executables.
	CloudBin, EdgeBin string
	// Services runs deploy/services.sh first; ServicesScript overrides where
	// it is (default: deploy/services.sh of the module the working directory
	// is in).
	Services       bool
	ServicesScript string
	// DatabaseURL and RedisURL are the shared services; the run gets its own
	// schema in that database.
	DatabaseURL, RedisURL string
	// Keep leaves the schema and the directory behind for a post-mortem.
	Keep bool

	Lots []LotSpec

	HoldTTL        time.Duration // PARKGATE_HOLD_TTL
	WorkerInterval time.Duration // PARKGATE_WORKER_INTERVAL
	LotRate        string        // PARKGATE_LOT_RATE; "" leaves the cloud's default
	// ClientRate is PARKGATE_CLIENT_RATE. Every simulated driver comes from
	// 127.0.0.1, which the cloud would take for one very busy client; the
	// default here is therefore generous.
	ClientRate string

	// DBMaxConns is the cloud's Postgres pool size (0: its default). Tests
	// running several systems at once keep it small: they share one server.
	DBMaxConns int

	EarlyGrace, ExitGrace time.Duration
	MinConfidence         float64
	Pulse                 time.Duration

	// Progress hears what the stack is doing, a line at a time.
	Progress io.Writer
}

// Edge is one lot's edge agent and its uplink, which the simulator can cut:
// one proxy to the broker and one to the cloud's HTTP API (catch-up), as a
// lot's one internet connection carries both.
type Edge struct {
	Lot        sim.Lot
	Proc       *Proc
	URL        string // the agent's HTTP API
	Proxy      *tcpproxy.Proxy
	CloudProxy *tcpproxy.Proxy
	Token      string
	Pins       *Pins // nil when the agent does not expose its fake pins

	dataDir string
	env     []string
	args    []string
}

// Stack is the running system.
type Stack struct {
	opts Options
	Dir  string

	Schema      string
	DatabaseURL string // with the run's search_path
	DB          *pgxpool.Pool

	Broker     *broker.Broker
	Stripe     *stripefake.Fake
	StripeURL  string
	Webhooks   *WebhookGate
	servers    []*http.Server
	AdminToken string
	PublicKey  string

	Cloud    *Proc
	CloudURL string
	// LossyURL reaches the cloud through an AnswerDropper.
	LossyURL string
	Edges    []*Edge

	HTTP *http.Client

	mu     sync.Mutex
	closed bool
}

func (s *Stack) logf(format string, args ...any) {
	if s.opts.Progress != nil {
		fmt.Fprintf(s.opts.Progress, format+"\n", args...)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RepoRoot is the directory of the go.mod above the working directory, or
// the working directory when there is none.
func RepoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return wd
		}
		d = parent
	}
}

// findServices looks for deploy/services.sh in the module above the working
// directory, then beside the bin/ directory of the running executable.
func findServices() string {
	cands := []string{filepath.Join(RepoRoot(), "deploy", "services.sh")}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(filepath.Dir(exe)), "deploy", "services.sh"))
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	return ""
}

// Start brings the system up. On error, whatever started is taken down.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.DatabaseURL == "" {
		opts.DatabaseURL = DefaultDatabaseURL
	}
	if opts.RedisURL == "" {
		opts.RedisURL = DefaultRedisURL
	}
	if opts.HoldTTL <= 0 {
		opts.HoldTTL = 10 * time.Minute
	}
	if opts.WorkerInterval <= 0 {
		opts.WorkerInterval = 500 * time.Millisecond
	}
	if opts.ClientRate == "" {
		opts.ClientRate = "5000/10000"
	}
	if len(opts.Lots) == 0 {
		return nil, errors.New("stack: no lots")
	}
	for _, bin := range []string{opts.CloudBin, opts.EdgeBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("stack: %s not found (make build, or --cloud-bin/--edge-bin): %w", bin, err)
		}
	}
	s := &Stack{opts: opts, HTTP: &http.Client{Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "parksim-"); err != nil {
			return nil, fmt.Errorf("stack: work dir: %w", err)
		}
	} else {
		s.Dir = opts.Dir
		if err = os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("stack: work dir: %w", err)
		}
	}

	if opts.Services {
		if err = s.services(ctx); err != nil {
			return nil, err
		}
	}
	if err = s.schema(ctx); err != nil {
		return nil, err
	}
	if err = s.broker(); err != nil {
		return nil, err
	}
	if err = s.stripe(); err != nil {
		return nil, err
	}
	if err = s.cloud(ctx); err != nil {
		return nil, err
	}
	if err = s.lots(ctx); err != nil {
		return nil, err
	}
	for _, e := range s.Edges {
		if err = s.startEdge(ctx, e); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) services(ctx context.Context) error {
	script := s.opts.ServicesScript
	if script == "" {
		script = findServices()
		if script == "" {
			return errors.New("stack: deploy/services.sh not found here or next to the executable's bin/; " +
				"run from the repository, or start the services yourself and pass --services=false")
		}
	}
	s.logf("services: %s", script)
	cmd := exec.CommandContext(ctx, "bash", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("stack: %s: %w\n%s", script, err, out.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line != "" && !strings.Contains(line, "=") {
			s.logf("  %s", line)
		}
	}
	return nil
}

func (s *Stack) schema(ctx context.Context) error {
	admin, err := pgxpool.New(ctx, s.opts.DatabaseURL)
	if err != nil {
		return fmt.Errorf("stack: postgres: %w", err)
	}
	defer admin.Close()
	s.Schema = "sim_" + time.Now().UTC().Format("0102_150405") + "_" + randHex(3)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+s.Schema); err != nil {
		return fmt.Errorf("stack: create schema (is Postgres up? deploy/services.sh): %w", err)
	}
	u, err := url.Parse(s.opts.DatabaseURL)
	if err != nil {
		return fmt.Errorf("stack: database url: %w", err)
	}
	q := u.Query()
	q.Set("search_path", s.Schema+",public")
	u.RawQuery = q.Encode()
	s.DatabaseURL = u.String()
	cfg, err := pgxpool.ParseConfig(s.DatabaseURL)
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	cfg.MaxConns = 2
	if s.DB, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	s.logf("postgres: schema %s", s.Schema)
	return nil
}

func (s *Stack) broker() error {
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := broker.FreePort()
		if err != nil {
			return err
		}
		b, err := broker.New(filepath.Join(s.Dir, "broker"), port)
		if err == nil {
			s.Broker = b
			s.logf("mosquitto: %s", b.URL())
			return nil
		}
		lastErr = err
	}
	return fmt.Errorf("stack: mosquitto: %w", lastErr)
}

func (s *Stack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

func freeAddr() (string, error) {
	p, err := broker.FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

const webhookSecret = "whsec_parksim"

func (s *Stack) stripe() error {
	// The gate learns the cloud's address once the cloud listens.
	s.Webhooks = NewWebhookGate("")
	gateURL, err := s.serve(s.Webhooks)
	if err != nil {
		return fmt.Errorf("stack: webhook gate: %w", err)
	}
	s.Stripe = stripefake.New(stripefake.Options{
		WebhookURL:    gateURL,
		WebhookSecret: webhookSecret,
		// Quick retries: a run lasts a minute, not Stripe's three days.
		RetryBase:   200 * time.Millisecond,
		RetryCap:    2 * time.Second,
		MaxAttempts: 30,
		// The gate may hold a delivery for as long as a hold lasts.
		WebhookClient: &http.Client{Timeout: 10 * time.Minute,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	})
	if s.StripeURL, err = s.serve(s.Stripe); err != nil {
		return fmt.Errorf("stack: stripe stand-in: %w", err)
	}
	s.logf("stripe stand-in: %s (webhooks through %s)", s.StripeURL, gateURL)
	return nil
}

func (s *Stack) cloud(ctx context.Context) error {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	key := ed25519.NewKeyFromSeed(seed)
	s.PublicKey = protocol.EncodePublicKey(key.Public().(ed25519.PublicKey))
	s.AdminToken = "parksim-admin-" + randHex(8)
	env := []string{
		"DATABASE_URL=" + s.DatabaseURL,
		"REDIS_URL=" + s.opts.RedisURL,
		"MQTT_URL=" + s.Broker.URL(),
		"STRIPE_SECRET_KEY=sk_test_parksim",
		"STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"STRIPE_API_BASE=" + s.StripeURL,
		"PARKGATE_ADMIN_TOKEN=" + s.AdminToken,
		"PARKGATE_HOLD_TTL=" + s.opts.HoldTTL.String(),
		"PARKGATE_SIGNING_KEY=" + base64.StdEncoding.EncodeToString(seed),
		"PARKGATE_WORKER_INTERVAL=" + s.opts.WorkerInterval.String(),
		"PARKGATE_CLIENT_RATE=" + s.opts.ClientRate,
		"PARKGATE_REPLICA_ID=parksim-" + s.Schema,
		"PARKGATE_REDIS_NAMESPACE=parksim-" + s.Schema,
	}
	if s.opts.LotRate != "" {
		env = append(env, "PARKGATE_LOT_RATE="+s.opts.LotRate)
	}
	if s.opts.DBMaxConns > 0 {
		env = append(env, "PARKGATE_DB_MAX_CONNS="+strconv.Itoa(s.opts.DBMaxConns))
	}
	p, addr, err := s.startServing(ctx, "parkcloud", s.opts.CloudBin, []string{"serve"},
		func(addr string) []string { return append(env, "PARKGATE_HTTP_ADDR="+addr) }, "/readyz", 60*time.Second)
	if err != nil {
		return err
	}
	s.Cloud, s.CloudURL = p, "http://"+addr
	s.Webhooks.SetTarget(s.CloudURL + "/v1/payments/webhook")
	s.logf("parkcloud: %s (log %s)", s.CloudURL, p.LogPath)
	if s.LossyURL, err = s.serve(NewAnswerDropper(s.CloudURL)); err != nil {
		return fmt.Errorf("stack: lossy network: %w", err)
	}
	return nil
}

// startServing starts a child that serves HTTP on an address picked for it
// (env gives its environment for that address) and waits until health
// answers. Ports are picked free and bound by the child a moment later;
// meanwhile the kernel may give the port to any other socket on the machine
// (an outgoing connection included), so a child that could not bind is
// started again on another port, three tries in all.
func (s *Stack) startServing(ctx context.Context, name, bin string, args []string, env func(addr string) []string, health string, wait time.Duration) (*Proc, string, error) {
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		p, err := startProc(name, s.Dir, bin, args, env(addr))
		if err != nil {
			return nil, "", fmt.Errorf("stack: %w", err)
		}
		err = p.waitHTTP(ctx, "http://"+addr+health, wait)
		if err == nil {
			return p, addr, nil
		}
		if !p.bindFailed() || attempt == 3 {
			_ = p.Stop(5 * time.Second) // one that is up but never answered
			return nil, "", fmt.Errorf("stack: %w", err)
		}
		s.logf("%s: %s was taken before it could bind; trying another port", name, addr)
	}
}

// do sends a JSON request and decodes a JSON answer into out.
func (s *Stack) do(ctx context.Context, method, url, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

// LotLocation is where lot i stands: lots sit a few hundred metres apart
// around one point, so one search finds them all.
func LotLocation(i int) (lat, lng float64) {
	return 52.5200 + 0.002*float64(i%5), 13.4050 + 0.003*float64(i/5)
}

func (s *Stack) lots(ctx context.Context) error {
	for i, spec := range s.opts.Lots {
		lat, lng := LotLocation(i)
		var lot struct {
			ID string `json:"id"`
		}
		_, err := s.do(ctx, http.MethodPost, s.CloudURL+"/v1/lots", s.AdminToken, map[string]any{
			"name": spec.Name, "latitude": lat, "longitude": lng, "time_zone": "Europe/Berlin",
			"spots": spec.Spots, "hourly_rate": map[string]any{"amount": 300, "currency": "eur"},
		}, &lot)
		if err != nil {
			return fmt.Errorf("stack: create lot %s: %w", spec.Name, err)
		}
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := s.do(ctx, http.MethodPost, s.CloudURL+"/v1/lots/"+lot.ID+"/edge-tokens", s.AdminToken, nil, &tok); err != nil {
			return fmt.Errorf("stack: edge token of %s: %w", spec.Name, err)
		}
		gates := spec.Gates
		if gates == "" {
			gates = "entry-1=entry,exit-1=exit"
		}
		sl := sim.Lot{Index: i, ID: lot.ID, Name: spec.Name, Spots: spec.Spots}
		for _, g := range strings.Split(gates, ",") {
			id, dir, _ := strings.Cut(strings.TrimSpace(g), "=")
			if dir == protocol.DirectionEntry {
				sl.Entry = append(sl.Entry, id)
			} else {
				sl.Exit = append(sl.Exit, id)
			}
		}
		e := &Edge{Lot: sl, Token: tok.Token, dataDir: filepath.Join(s.Dir, "edge-"+spec.Name)}
		e.env = []string{"PARKGATE_GATES=" + gates}
		s.Edges = append(s.Edges, e)
		s.logf("lot %s: %s, %d spots", spec.Name, lot.ID, spec.Spots)
	}
	return nil
}

func (s *Stack) startEdge(ctx context.Context, e *Edge) error {
	if e.Proxy == nil {
		var err error
		if e.Proxy, err = tcpproxy.Listen("127.0.0.1:0", s.Broker.Addr()); err != nil {
			return fmt.Errorf("stack: proxy for %s: %w", e.Lot.Name, err)
		}
		if e.CloudProxy, err = tcpproxy.Listen("127.0.0.1:0", strings.TrimPrefix(s.CloudURL, "http://")); err != nil {
			return fmt.Errorf("stack: proxy for %s: %w", e.Lot.Name, err)
		}
		if err := os.MkdirAll(e.dataDir, 0o755); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		var env []string // the environment of the try that started
		p, addr, err := s.startServing(ctx, "parkedge-"+e.Lot.Name, s.opts.EdgeBin, e.args,
			func(addr string) []string {
				env = append(slices.Clip(e.env), edgeEnv(s, e, addr)...)
				return env
			},
			"/healthz", 30*time.Second)
		if err != nil {
			return err
		}
		e.URL = "http://" + addr
		e.Lot.EdgeURL = e.URL
		e.env = env
		e.Proc = p
	} else {
		// A restart keeps its address: the cameras know it.
		p, err := startProc("parkedge-"+e.Lot.Name, s.Dir, s.opts.EdgeBin, e.args, e.env)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		e.Proc = p
		if err := p.waitHTTP(ctx, e.URL+"/healthz", 30*time.Second); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
	}
	e.Pins = probePins(ctx, e.URL)
	pins := "no fake pins over HTTP"
	if e.Pins != nil {
		pins = "fake pins at " + e.Pins.base
	}
	s.logf("parkedge %s: %s via proxy %s (%s; log %s)", e.Lot.Name, e.URL, e.Proxy.Addr(), pins, e.Proc.LogPath)
	return nil
}

func edgeEnv(s *Stack, e *Edge, addr string) []string {
	o := s.opts
	env := []string{
		"PARKGATE_LOT_ID=" + e.Lot.ID,
		"PARKGATE_DATA_DIR=" + e.dataDir,
		"MQTT_URL=" + e.Proxy.URL(),
		"PARKGATE_CLOUD_URL=http://" + e.CloudProxy.Addr(),
		"PARKGATE_EDGE_TOKEN=" + e.Token,
		"PARKGATE_CLOUD_PUBLIC_KEYS=" + s.PublicKey,
		"PARKGATE_HARDWARE=sim",
		"PARKGATE_HTTP_ADDR=" + addr,
	}
	if o.EarlyGrace > 0 {
		env = append(env, "PARKGATE_EARLY_GRACE="+o.EarlyGrace.String())
	}
	if o.ExitGrace > 0 {
		env = append(env, "PARKGATE_EXIT_GRACE="+o.ExitGrace.String())
	}
	if o.MinConfidence > 0 {
		env = append(env, "PARKGATE_MIN_CONFIDENCE="+strconv.FormatFloat(o.MinConfidence, 'f', -1, 64))
	}
	if o.Pulse > 0 {
		env = append(env, "PARKGATE_PULSE="+o.Pulse.String())
	}
	return env
}

// Cut takes the lot's uplink down: its broker connection and its way to
// the cloud's API drop, and new ones are refused.
func (e *Edge) Cut() {
	e.Proxy.Cut()
	e.CloudProxy.Cut()
}

// Restore brings the uplink back.
func (e *Edge) Restore() {
	e.Proxy.Restore()
	e.CloudProxy.Restore()
}

// IsCut reports whether the uplink is down.
func (e *Edge) IsCut() bool { return e.Proxy.IsCut() }

// Edge returns the edge of lot index i.
func (s *Stack) Edge(i int) *Edge { return s.Edges[i] }

// Lots returns the lots as the run records them.
func (s *Stack) Lots() []sim.Lot {
	out := make([]sim.Lot, len(s.Edges))
	for i, e := range s.Edges {
		out[i] = e.Lot
	}
	return out
}

// RestartBroker stops Mosquitto gracefully and starts it again on the same
// port with its persistence, as an operator's restart would.
func (s *Stack) RestartBroker() error { return s.Broker.Restart() }

// Close takes everything down: edges first (so their outboxes are not
// drained into a dying broker's queue halfway), then the cloud, the stand-in
// and the broker; then drops the schema and the directory unless Keep.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	for _, e := range s.Edges {
		if e.Proc != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = e.Proc.Stop(10 * time.Second) }()
		}
	}
	wg.Wait()
	for _, e := range s.Edges {
		for _, p := range []*tcpproxy.Proxy{e.Proxy, e.CloudProxy} {
			if p != nil {
				_ = p.Close()
			}
		}
	}
	if s.Cloud != nil {
		if err := s.Cloud.Stop(25 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Webhooks != nil {
		s.Webhooks.Close()
	}
	if s.Stripe != nil {
		s.Stripe.Close()
	}
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	if s.Broker != nil {
		_ = s.Broker.Stop()
	}
	if s.DB != nil {
		s.DB.Close()
	}
	if s.Schema != "" && !s.opts.Keep {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if admin, err := pgxpool.New(ctx, s.opts.DatabaseURL); err == nil {
			if _, err := admin.Exec(ctx, "DROP SCHEMA "+s.Schema+" CASCADE"); err != nil {
				errs = append(errs, fmt.Errorf("drop schema %s: %w", s.Schema, err))
			}
			admin.Close()
		}
		cancel()
	}
	if s.opts.Dir == "" && s.Dir != "" && !s.opts.Keep {
		_ = os.RemoveAll(s.Dir)
	}
	return errors.Join(errs...)
}
