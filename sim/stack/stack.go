package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/parkgate/parkgate/cloud/postgres"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/internal/testkit/pgserver"
	"github.com/parkgate/parkgate/internal/testkit/redisserver"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
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
	// FreeCancellation is the lot's policy: a confirmed booking cancelled
	// before starts_at minus it is refunded in full.
	FreeCancellation time.Duration
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
	// PrivatePostgres and PrivateRedis run the run's own Postgres and
	// Redis (internal/testkit/pgserver, redisserver) instead of the shared
	// ones, so that faults can restart them; DatabaseURL and RedisURL are
	// then ignored.
	PrivatePostgres, PrivateRedis bool
	// SmallDisks puts each edge's data directory on a small tmpfs that
	// FillDisk can fill (needs root; without, FillDisk says so).
	SmallDisks bool
	// ProductionBroker runs Mosquitto with the shipped configuration
	// (deploy/mosquitto: TLS, the acl, a password file with a user per lot
	// and per further gate, client id = username) instead of the test
	// kit's open one; parkcloud runs as replica 1, the acl's. Only with
	// ExternalEdges: the agents' processes are not given its certificate.
	ProductionBroker bool
	// ExternalEdges creates the lots and their edge tokens but starts no
	// parkedge: the caller runs the agents (the fleet run builds them in
	// its own process). EdgeBin is then not needed.
	ExternalEdges bool

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

// Stack is the running system.
type Stack struct {
	opts Options
	Dir  string

	Schema      string
	DatabaseURL string // with the run's search_path
	DB          *postgres.DB

	Broker     *broker.Broker
	prod       *prodBroker         // nil unless Options.ProductionBroker
	Postgres   *pgserver.Server    // nil unless Options.PrivatePostgres
	Redis      *redisserver.Server // nil unless Options.PrivateRedis
	Stripe     *stripefake.Fake
	StripeURL  string
	Webhooks   *WebhookGate
	servers    []*http.Server
	AdminToken string
	PublicKey  string

	Cloud    *Proc
	CloudURL string
	cloudEnv []string // what a restart of the cloud starts it with
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
	if opts.ProductionBroker && !opts.ExternalEdges {
		return nil, errors.New("stack: the production broker is for agents the caller runs (ExternalEdges)")
	}
	bins := []string{opts.CloudBin, opts.EdgeBin}
	if opts.ExternalEdges {
		bins = bins[:1]
	}
	for _, bin := range bins {
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
	if err = s.private(); err != nil {
		return nil, err
	}
	if err = s.schema(ctx); err != nil {
		return nil, err
	}
	if opts.ProductionBroker {
		err = s.productionBroker()
	} else {
		err = s.broker()
	}
	if err != nil {
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
	if s.prod != nil {
		if err = s.addLotUsers(); err != nil {
			return nil, err
		}
	}
	if opts.ExternalEdges {
		return s, nil
	}
	if opts.SmallDisks {
		s.smallDisks()
	}
	for _, e := range s.Edges {
		if err = s.startEdge(ctx, e); err != nil {
			return nil, err
		}
	}
	return s, nil
}

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
	if s.Schema != "" && !s.opts.Keep && s.Postgres == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := postgres.DropSchema(ctx, s.opts.DatabaseURL, s.Schema); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	s.unmountDisks()
	// A private server goes with the run, schema and all.
	if s.Postgres != nil {
		if err := s.Postgres.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Redis != nil {
		_ = s.Redis.Stop()
	}
	if s.opts.Dir == "" && s.Dir != "" && !s.opts.Keep {
		_ = os.RemoveAll(s.Dir)
	}
	return errors.Join(errs...)
}
