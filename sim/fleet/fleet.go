package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/parkgate/parkgate/sim/stack"
)

// Options size a fleet run. Zero values take the defaults in brackets.
type Options struct {
	Lots  int    // lots, each with its own agent [1000]
	Spots int    // spots per lot [50]
	Gates string // each lot's gates, as PARKGATE_GATES takes them [entry-1=entry,exit-1=exit]
	// Rate is bookings per second across all lots [20]; Duration how long
	// the steady phase books [2m].
	Rate     float64
	Duration time.Duration
	// Outage is how long the broker stays down in the restart phase, while
	// bookings go on being confirmed [5s]; negative skips the phase.
	Outage time.Duration
	// Idle is how long the CPU of a connected, unbooked fleet is measured
	// before the steady phase [15s]; negative skips it.
	Idle time.Duration
	// Settle is the longest wait for changes to reach the edges, after each
	// phase [2m].
	Settle time.Duration

	CloudBin              string // bin/parkcloud
	Services              bool   // run deploy/services.sh first
	DatabaseURL, RedisURL string // the shared services, when not PrivateServices
	// PrivateServices runs the run's own Postgres and Redis, so that their
	// CPU time is the run's alone and can be counted per booking.
	PrivateServices bool
	DBMaxConns      int    // parkcloud's pool [the cloud's default]
	Dir             string // logs and data; a temporary directory when empty
	Keep            bool   // keep Dir and the schema
	Progress        io.Writer
}

func (o *Options) defaults() {
	if o.Lots <= 0 {
		o.Lots = 1000
	}
	if o.Spots <= 0 {
		o.Spots = 50
	}
	if o.Gates == "" {
		o.Gates = "entry-1=entry,exit-1=exit"
	}
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Minute
	}
	if o.Outage == 0 {
		o.Outage = 5 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Minute
	}
	if o.Idle == 0 {
		o.Idle = 15 * time.Second
	}
}

// Result is what a run measured and found.
type Result struct {
	Lots        int `json:"lots"`
	Connections int `json:"mqtt_connections"` // edges' broker connections: a lot's main one and one per further gate
	// StartAll is from the first agent's start until every agent was
	// connected with its signing key registered.
	StartAll  time.Duration `json:"-"`
	StartAllS float64       `json:"start_all_s"`
	// Memory per agent: this process's Go heap in use and its resident
	// set, grown by starting the agents, divided by their number.
	HeapPerAgent int64 `json:"heap_per_agent_bytes"`
	RSSPerAgent  int64 `json:"rss_per_agent_bytes"`
	// BrokerRSS and CloudRSS are Mosquitto's and parkcloud's resident sets
	// at the end of the steady phase.
	BrokerRSS int64 `json:"broker_rss_bytes"`
	CloudRSS  int64 `json:"cloud_rss_bytes"`

	// Idle is the CPU every process spent over a stretch with all agents
	// connected and nothing booked: keepalives, polls, the cost of lots
	// merely existing.
	Idle    Phase    `json:"idle"`
	Steady  Phase    `json:"steady"`
	Restart *Restart `json:"restart,omitempty"`
	// EntryCPU is each process's CPU seconds from the first booked car at
	// its entry until every gate event was in the cloud and every
	// CHECKED_IN change at its edge: the ingest of a gate event and the
	// relay of the change it makes.
	EntryCPU     map[string]float64 `json:"entry_cpu_s"`
	EntryElapsed float64            `json:"entry_elapsed_s"`

	Entries      int `json:"entries"`       // booked cars shown at their lot's entry camera
	EntriesOpen  int `json:"entries_open"`  // …that the agent let in
	EventsStored int `json:"events_stored"` // …whose gate events reached the cloud

	Problems []string `json:"problems"` // correctness failures; empty when the run is sound
}

// Phase is the steady load.
type Phase struct {
	Rate      float64       `json:"rate_per_s"`
	Elapsed   time.Duration `json:"-"`
	ElapsedS  float64       `json:"elapsed_s"`
	Bookings  int           `json:"bookings"`
	Failed    int           `json:"failed"`
	LastError string        `json:"last_error,omitempty"`
	// ConfirmedToApplied is from the cloud's 2xx to the payment webhook
	// until the lot's edge applied the CONFIRMED change; CommitToApplied
	// from the change's row in the lot's change log (its transaction's
	// time) until then.
	ConfirmedToApplied Percentiles `json:"confirmed_to_applied"`
	CommitToApplied    Percentiles `json:"commit_to_applied"`
	// RelayPublished is parkgate_relay_published_total's growth over the
	// phase: changes published to the lots' topics and acknowledged.
	RelayPublished float64 `json:"relay_published"`
	RelayPerSecond float64 `json:"relay_per_s"`
	// CPU is each process's CPU seconds over the phase: parkcloud,
	// mosquitto, postgres and redis (when private), and this process (the
	// agents, the drivers and the Stripe stand-in).
	CPU map[string]float64 `json:"cpu_s"`
}

// Restart is the broker restart with every session persistent.
type Restart struct {
	Sessions int `json:"sessions"`
	// Bookings were confirmed while the broker was down.
	Bookings int           `json:"bookings"`
	Down     time.Duration `json:"-"`
	DownS    float64       `json:"down_s"`
	// Reconnected and CaughtUp are from the broker accepting connections
	// again until every edge's main connection was back, and until every
	// edge had applied its lot's last change.
	Reconnected  time.Duration `json:"-"`
	ReconnectedS float64       `json:"reconnected_s"`
	CaughtUp     time.Duration `json:"-"`
	CaughtUpS    float64       `json:"caught_up_s"`
	// EdgeReconnect is each edge's time from the broker up until its main
	// connection was back.
	EdgeReconnect Percentiles `json:"edge_reconnect"`
	// CPU is each process's CPU seconds from the broker up until every
	// edge caught up (mosquitto's is its new process's whole: loading the
	// sessions and taking every connection back).
	CPU map[string]float64 `json:"cpu_s"`
	// CommitToApplied of the bookings confirmed during the outage.
	CommitToApplied Percentiles `json:"commit_to_applied"`
}

// Run brings the system up with opts.Lots in-process agents, runs the
// phases, checks the outcome and takes everything down. An error means the
// run could not be carried out; what went wrong in the system is in
// Result.Problems.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	if err := raiseFileLimit(opts.Lots); err != nil {
		return nil, err
	}
	lots := make([]stack.LotSpec, opts.Lots)
	for i := range lots {
		lots[i] = stack.LotSpec{Name: fmt.Sprintf("f%04d", i+1), Spots: opts.Spots, Gates: opts.Gates}
	}
	st, err := stack.Start(ctx, stack.Options{
		Dir: opts.Dir, CloudBin: opts.CloudBin, Services: opts.Services, Keep: opts.Keep,
		DatabaseURL: opts.DatabaseURL, RedisURL: opts.RedisURL,
		PrivatePostgres: opts.PrivateServices, PrivateRedis: opts.PrivateServices,
		ProductionBroker: true, ExternalEdges: true, Lots: lots, DBMaxConns: opts.DBMaxConns,
		Progress: opts.Progress,
	})
	if err != nil {
		return nil, err
	}
	r := &runner{opts: opts, st: st, res: &Result{Lots: opts.Lots}, applied: newApplyLog(),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	defer r.close()
	if err := r.trustBroker(); err != nil {
		return nil, err
	}
	if err := r.startAgents(ctx); err != nil {
		return nil, err
	}
	if err := r.steady(ctx); err != nil {
		return nil, err
	}
	if opts.Outage > 0 {
		if err := r.restart(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.verify(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

type runner struct {
	opts    Options
	st      *stack.Stack
	res     *Result
	applied *applyLog
	agents  []*agent
	book    *booker
	http    *http.Client
	logFile *os.File
}

func (r *runner) logf(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, format+"\n", args...)
	}
}

func (r *runner) close() {
	r.logf("fleet: taking the fleet and the system down")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, a := range r.agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); a.close(); <-sem }()
	}
	wg.Wait()
	r.logf("fleet: agents closed")
	if r.logFile != nil {
		r.logFile.Close()
	}
	_ = r.st.Close()
}

// raiseFileLimit lifts this process's open-file limit to its hard limit,
// which Mosquitto and parkcloud inherit: each lot takes a broker connection
// per gate, a store file and an HTTP connection or two.
func raiseFileLimit(lots int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("fleet: open-file limit: %w", err)
	}
	need := uint64(8*lots + 1024)
	if lim.Max < need {
		return fmt.Errorf("fleet: %d lots need about %d open files, the hard limit is %d (ulimit -Hn)", lots, need, lim.Max)
	}
	lim.Cur = lim.Max
	// Set explicitly (Go raised it for itself already): children inherit
	// a limit the program set, not the one it started with.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("fleet: open-file limit: %w", err)
	}
	return nil
}

// trustBroker makes this process trust the broker's throwaway certificate
// as the agents' TLS would trust a public CA's: through SSL_CERT_FILE, which
// Go reads once, at the first verification. A process that verified a
// certificate before cannot take it any more, which the test dial shows.
func (r *runner) trustBroker() error {
	if err := os.Setenv("SSL_CERT_FILE", r.st.CAFile()); err != nil {
		return err
	}
	conn, err := tls.Dial("tcp", r.st.Broker.Addr(), &tls.Config{MinVersion: tls.VersionTLS12})
	if err != nil {
		return fmt.Errorf("fleet: the broker's certificate is not trusted (was SSL_CERT_FILE read before the run?): %w", err)
	}
	return conn.Close()
}

func (r *runner) startAgents(ctx context.Context) error {
	var err error
	if r.logFile, err = os.Create(filepath.Join(r.st.Dir, "agents.log")); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	dir := filepath.Join(r.st.Dir, "edges")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	cfg := agentConfig{dir: dir, brokerURL: r.st.BrokerURL(), cloudURL: r.st.CloudURL, keys: r.st.PublicKey,
		logger:  slog.New(slog.NewJSONHandler(r.logFile, &slog.HandlerOptions{Level: slog.LevelWarn})),
		applied: r.applied, catchUp: 10 * time.Second}
	before := measureMemory()
	start := time.Now()
	r.agents = make([]*agent, len(r.st.Edges))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 16)
	for i, e := range r.st.Edges {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a, err := startAgent(ctx, cfg, e.Lot, e.Token)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			r.agents[i] = a
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, a := range r.agents {
		r.res.Connections += len(a.lot.Entry) + len(a.lot.Exit)
	}
	r.logf("fleet: %d agents started, %d broker connections; waiting for every one to connect", len(r.agents), r.res.Connections)
	ready := func() (int, bool) {
		n := 0
		for _, a := range r.agents {
			if a.link.Connected() && a.link.Stats().KeyRegistered {
				n++
			}
		}
		return n, n == len(r.agents)
	}
	if err := r.waitFor(ctx, "every agent connected with its key registered", ready); err != nil {
		return err
	}
	r.res.StartAll = time.Since(start)
	r.res.StartAllS = r.res.StartAll.Seconds()
	time.Sleep(2 * time.Second) // let start-up catch-ups and their buffers go
	after := measureMemory()
	n := int64(len(r.agents))
	r.res.HeapPerAgent = (after.heap - before.heap) / n
	r.res.RSSPerAgent = (after.rss - before.rss) / n
	r.logf("fleet: all %d connected in %s; per agent %d KiB heap, %d KiB RSS", n, round(r.res.StartAll),
		r.res.HeapPerAgent/1024, r.res.RSSPerAgent/1024)
	return nil
}

// waitFor polls cond until it holds, opts.Settle passes (an error naming
// what) or ctx ends; cond returns how many are done for the progress line.
func (r *runner) waitFor(ctx context.Context, what string, cond func() (int, bool)) error {
	deadline := time.Now().Add(r.opts.Settle)
	last := time.Now()
	for {
		n, ok := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet: not %s after %s (%d done)", what, r.opts.Settle, n)
		}
		if time.Since(last) > 10*time.Second {
			r.logf("fleet: waiting: %d done (%s)", n, what)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *runner) cpu() map[string]float64 {
	m := map[string]float64{
		"parkcloud": cpuSeconds(r.st.Cloud.Pid(), false),
		"mosquitto": cpuSeconds(r.st.Broker.Pid(), false),
		"fleet":     cpuSeconds(os.Getpid(), false),
	}
	if r.st.Postgres != nil {
		m["postgres"] = cpuSeconds(r.st.Postgres.Pid(), true)
	}
	if r.st.Redis != nil {
		m["redis"] = cpuSeconds(r.st.Redis.Pid(), false)
	}
	return m
}

func diffCPU(after, before map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

func (r *runner) relayPublished(ctx context.Context) (float64, error) {
	return metric(ctx, r.http, r.st.CloudURL+"/metrics", "parkgate_relay_published_total")
}

// runTag is three letters that make this run's plates its own; none of
// them reads like a digit, so no plate can pass for another.
func runTag() string {
	const letters = "ACDEFGHJKLMNPRTUVWXY"
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
