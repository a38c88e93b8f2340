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

	"github.com/parkgate/parkgate/protocol"
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

func (r *runner) steady(ctx context.Context) error {
	lotIDs := make([]string, len(r.agents))
	for i, a := range r.agents {
		lotIDs[i] = a.lot.ID
	}
	r.book = &booker{cloudURL: r.st.CloudURL, http: r.http, stripe: r.st.Stripe, lots: lotIDs, run: runTag()}
	if idle := r.opts.Idle; idle > 0 {
		r.logf("fleet: idle for %s: CPU with every lot connected and nothing booked", idle)
		icpu := r.cpu()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(idle):
		}
		r.res.Idle = Phase{Elapsed: idle, ElapsedS: idle.Seconds(), CPU: diffCPU(r.cpu(), icpu)}
	}
	relay0, err := r.relayPublished(ctx)
	if err != nil {
		return err
	}
	cpu0 := r.cpu()
	r.logf("fleet: steady phase: %.0f bookings/s for %s across %d lots", r.opts.Rate, r.opts.Duration, len(r.agents))
	start := time.Now()
	r.book.book(ctx, "steady", r.opts.Rate, r.opts.Duration)
	p := &r.res.Steady
	p.Rate, p.Elapsed = r.opts.Rate, time.Since(start)
	p.ElapsedS = p.Elapsed.Seconds()
	cpu1 := r.cpu()
	relay1, err := r.relayPublished(ctx)
	if err != nil {
		return err
	}
	r.res.BrokerRSS, r.res.CloudRSS = rssBytes(r.st.Broker.Pid()), rssBytes(r.st.Cloud.Pid())
	p.CPU = diffCPU(cpu1, cpu0)
	p.RelayPublished = relay1 - relay0
	p.RelayPerSecond = p.RelayPublished / p.ElapsedS
	bs := r.book.bookings()
	p.Bookings = len(bs)
	r.book.mu.Lock()
	p.Failed = r.book.failed
	if r.book.lastErr != nil {
		p.LastError = r.book.lastErr.Error()
	}
	r.book.mu.Unlock()
	r.logf("fleet: %d bookings (%d failed) in %s; relay %.0f msgs/s; waiting for every confirmation at its edge",
		p.Bookings, p.Failed, round(p.Elapsed), p.RelayPerSecond)
	if err := r.waitApplied(ctx, bs); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	return nil
}

// waitApplied waits until every booking's confirmation was applied at its
// edge (or Settle passes, which it reports).
func (r *runner) waitApplied(ctx context.Context, bs []*booking) error {
	return r.waitFor(ctx, "every confirmed booking applied at its edge", func() (int, bool) {
		n := 0
		for _, b := range bs {
			if _, ok := r.applied.applied(b.id); ok {
				n++
			}
		}
		return n, n == len(bs)
	})
}

func (r *runner) restart(ctx context.Context) error {
	rs := &Restart{Sessions: r.res.Connections}
	r.res.Restart = rs
	before := len(r.book.bookings())
	r.logf("fleet: broker restart: down for %s with %d persistent sessions while bookings go on", r.opts.Outage, rs.Sessions)
	down := time.Now()
	if err := r.st.Broker.Stop(); err != nil {
		return err
	}
	r.book.book(ctx, "restart", r.opts.Rate, r.opts.Outage)
	// Every payment of the outage is confirmed (its change waits in the
	// outbox) before the broker comes back.
	fctx, cancel := context.WithTimeout(ctx, r.opts.Settle)
	err := r.st.Stripe.Flush(fctx)
	cancel()
	if err != nil {
		return err
	}
	if err := r.st.RestartBroker(); err != nil {
		return err
	}
	up, cpu0 := time.Now(), r.cpu()
	cpu0["mosquitto"] = 0
	rs.Bookings = len(r.book.bookings()) - before
	back := make([]time.Duration, len(r.agents))
	if err := r.waitFor(ctx, "every edge reconnected", func() (int, bool) {
		n := 0
		for i, a := range r.agents {
			if back[i] == 0 && a.link.Connected() {
				back[i] = time.Since(up)
			}
			if back[i] > 0 {
				n++
			}
		}
		return n, n == len(r.agents)
	}); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	rs.Reconnected = time.Since(up)
	rs.ReconnectedS = rs.Reconnected.Seconds()
	rs.EdgeReconnect = percentiles(back)
	if err := r.waitCaughtUp(ctx); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	rs.CaughtUp = time.Since(up)
	rs.CaughtUpS = rs.CaughtUp.Seconds()
	rs.CPU = diffCPU(r.cpu(), cpu0)
	rs.Down = up.Sub(down)
	rs.DownS = rs.Down.Seconds()
	// What the broker said while taking the fleet back, for a post-mortem
	// (--keep).
	_ = os.WriteFile(filepath.Join(r.st.Dir, "broker-restart.log"), []byte(r.st.Broker.Log()), 0o644)
	r.logf("fleet: broker back after %s; every edge reconnected %s and caught up %s after", round(rs.Down),
		round(rs.Reconnected), round(rs.CaughtUp))
	return nil
}

// waitCaughtUp waits until every edge has applied its lot's last change,
// as the cloud's change log has it.
func (r *runner) waitCaughtUp(ctx context.Context) error {
	var seqs map[string]int64
	var lastRead time.Time
	return r.waitFor(ctx, "every edge caught up with its lot's change log", func() (int, bool) {
		if time.Since(lastRead) > 500*time.Millisecond {
			s, err := r.st.LotSeqs(ctx)
			if err != nil {
				return 0, false
			}
			seqs, lastRead = s, time.Now()
		}
		n := 0
		for _, a := range r.agents {
			if a.link.AppliedSeq() >= seqs[a.lot.ID] {
				n++
			}
		}
		return n, n == len(r.agents)
	})
}

// verify reads the change log and every agent's record, fills in the
// latencies, and shows every booked car at its lot's entry.
func (r *runner) verify(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, r.opts.Settle)
	err := r.st.Stripe.Flush(fctx)
	cancel()
	if err != nil {
		return err
	}
	if err := r.waitCaughtUp(ctx); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	changes, err := r.st.Changes(ctx)
	if err != nil {
		return err
	}
	committed := map[string]time.Time{}
	for _, c := range changes {
		if c.Status == protocol.StatusConfirmed {
			committed[c.ReservationID] = c.CreatedAt
		}
	}
	seqs, err := r.st.LotSeqs(ctx)
	if err != nil {
		return err
	}
	var steadyConf, steadyCommit, restartCommit []time.Duration
	var missing []string
	for _, b := range r.book.bookings() {
		b.confirmed = r.st.Webhooks.PaidSeen(b.session)
		b.committed = committed[b.id]
		b.applied, _ = r.applied.applied(b.id)
		switch {
		case b.committed.IsZero():
			missing = append(missing, fmt.Sprintf("%s (lot %s): paid, never CONFIRMED in the change log", b.id, r.agents[b.lot].lot.Name))
			continue
		case b.applied.IsZero():
			missing = append(missing, fmt.Sprintf("%s (lot %s): CONFIRMED, never applied at its edge", b.id, r.agents[b.lot].lot.Name))
			continue
		}
		if b.phase == "steady" {
			if !b.confirmed.IsZero() {
				steadyConf = append(steadyConf, b.applied.Sub(b.confirmed))
			}
			steadyCommit = append(steadyCommit, b.applied.Sub(b.committed))
		} else {
			restartCommit = append(restartCommit, b.applied.Sub(b.committed))
		}
	}
	r.res.Steady.ConfirmedToApplied = percentiles(steadyConf)
	r.res.Steady.CommitToApplied = percentiles(steadyCommit)
	if r.res.Restart != nil {
		r.res.Restart.CommitToApplied = percentiles(restartCommit)
	}
	r.problems(missing)
	var behind []string
	for _, a := range r.agents {
		if got, want := a.link.AppliedSeq(), seqs[a.lot.ID]; got != want {
			behind = append(behind, fmt.Sprintf("lot %s: edge applied seq %d, the cloud's last is %d", a.lot.Name, got, want))
		}
		if s := a.link.Stats(); s.BadSignatures > 0 || s.Invalid > 0 {
			behind = append(behind, fmt.Sprintf("lot %s: %d changes refused for their signature, %d invalid", a.lot.Name, s.BadSignatures, s.Invalid))
		}
	}
	r.problems(behind)
	return r.entries(ctx)
}

// entries shows every booked car at its lot's entry camera: the agent must
// open from its own store, and each decision's gate event must reach the
// cloud through the broker under the lot's credentials.
func (r *runner) entries(ctx context.Context) error {
	bs := r.book.bookings()
	var refused []string
	want := map[string]bool{}
	cpu0, start := r.cpu(), time.Now()
	for _, b := range bs {
		res, err := r.agents[b.lot].enter(ctx, b.plate)
		if err != nil {
			return fmt.Errorf("fleet: entry at lot %s: %w", r.agents[b.lot].lot.Name, err)
		}
		r.res.Entries++
		if res.Open() {
			r.res.EntriesOpen++
		} else {
			refused = append(refused, fmt.Sprintf("%s at lot %s: %s (%s)", b.plate, r.agents[b.lot].lot.Name, res.Decision.Decision, res.Reason))
		}
		want[res.EventID] = true
	}
	r.problems(refused)
	r.logf("fleet: %d booked cars at their entries, %d let in; waiting for their gate events in the cloud", r.res.Entries, r.res.EntriesOpen)
	var have map[string]bool
	var lastRead time.Time
	err := r.waitFor(ctx, "every gate event in the cloud", func() (int, bool) {
		// Read at most once a second: the query's CPU is Postgres's, and
		// the phase's CPU is counted as the entries' cost.
		if time.Since(lastRead) < time.Second {
			return r.res.EventsStored, false
		}
		h, err := r.st.GateEventIDs(ctx)
		if err != nil {
			return 0, false
		}
		have, lastRead = h, time.Now()
		n := 0
		for id := range want {
			if have[id] {
				n++
			}
		}
		r.res.EventsStored = n
		return n, n == len(want)
	})
	if err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	// Each entry's CHECKED_IN change goes back to its edge.
	if err := r.waitCaughtUp(ctx); err != nil {
		r.res.Problems = append(r.res.Problems, err.Error())
	}
	r.res.EntryCPU, r.res.EntryElapsed = diffCPU(r.cpu(), cpu0), time.Since(start).Seconds()
	return nil
}

// problems adds failures of one kind, the first few in full.
func (r *runner) problems(ps []string) {
	for i, p := range ps {
		if i == 5 {
			r.res.Problems = append(r.res.Problems, fmt.Sprintf("… and %d more like it", len(ps)-5))
			return
		}
		r.res.Problems = append(r.res.Problems, p)
	}
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
