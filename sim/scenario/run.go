package scenario

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/check"
	"github.com/parkgate/parkgate/sim/report"
	"github.com/parkgate/parkgate/sim/stack"
	"github.com/parkgate/parkgate/sim/traffic"
)

// Options are a run's settings; zero sizes take the scenario's defaults.
type Options struct {
	Scenario string
	Size     Size
	Seed     uint64

	CloudBin, EdgeBin     string
	Services              bool
	DatabaseURL, RedisURL string
	// ReportDir is where the report's directory is made; empty writes no
	// files.
	ReportDir string
	// Keep leaves the database schema and the processes' directory behind.
	Keep bool
	// DBMaxConns bounds the cloud's Postgres pool (0: its default).
	DBMaxConns int
	// Settle bounds the wait, after the traffic, for every event to reach
	// the cloud and every payment to be handled. Default 45s.
	Settle time.Duration
	// Progress hears what happens while the run goes on; nil is quiet.
	Progress io.Writer

	// AfterStart runs once the system is up, before any traffic: tests use
	// it to break the system on purpose (e.g. drop a constraint).
	AfterStart func(ctx context.Context, st *stack.Stack) error
	// BeforeCheck runs after the sources of truth were read, before the
	// invariants: tests use it to tamper with what was collected.
	BeforeCheck func(ctx context.Context, st *stack.Stack, run *sim.Run) error
}

// Outcome is what a run found.
type Outcome struct {
	Run     *sim.Run
	Results []check.Result
	Summary *report.Summary
	// Pass is true when every invariant and expectation held.
	Pass bool
	// Dir is the processes' directory when kept.
	Dir string
	// FaultTable measures each fault: requests during it, errors, data
	// lost, time to recover.
	FaultTable []FaultRow
}

func (o *Options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Run plays a scenario end to end. An error means the run could not be
// carried out (a process would not start); failed invariants are not an
// error but Outcome.Pass false.
func Run(ctx context.Context, opts Options) (*Outcome, error) {
	sc, err := Get(opts.Scenario)
	if err != nil {
		return nil, err
	}
	sz := sc.Default
	if opts.Size.Lots > 0 {
		sz.Lots = opts.Size.Lots
	}
	if opts.Size.Spots > 0 {
		sz.Spots = opts.Size.Spots
	}
	if opts.Size.Drivers > 0 {
		sz.Drivers = opts.Size.Drivers
	}
	if opts.Size.Duration > 0 {
		sz.Duration = opts.Size.Duration
	}
	if opts.Size.Rate > 0 {
		sz.Rate = opts.Size.Rate
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	if opts.Settle <= 0 {
		opts.Settle = 45 * time.Second
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	plans := sc.Plan(rng, sz, sc)
	if sc.Load {
		sz.Drivers = len(plans)
	}
	plates := traffic.Plates(rng, len(plans))

	mode := fmt.Sprintf("%d drivers", sz.Drivers)
	if sc.Load {
		mode = fmt.Sprintf("%.1f drivers/s (%d)", sz.Rate, sz.Drivers)
	}
	opts.logf("parksim: scenario %s — %d lots × %d spots, %s, %s, seed %d", sc.Name, sz.Lots, sz.Spots, mode, sz.Duration, opts.Seed)

	lots := make([]stack.LotSpec, sz.Lots)
	for i := range lots {
		lots[i] = stack.LotSpec{Name: fmt.Sprintf("lot-%d", i+1), Spots: sz.Spots}
		if sc.FreeCancellation != nil {
			lots[i].FreeCancellation = sc.FreeCancellation(sz, i)
		}
		if sc.Load {
			// A busy lot has more lanes.
			lots[i].Gates = "entry-1=entry,entry-2=entry,exit-1=exit,exit-2=exit"
		}
	}
	pulse := 300 * time.Millisecond
	var lotRate string
	if sc.LotRate != nil {
		lotRate = sc.LotRate(sz)
	}
	st, err := stack.Start(ctx, stack.Options{
		CloudBin: opts.CloudBin, EdgeBin: opts.EdgeBin, Services: opts.Services,
		DatabaseURL: opts.DatabaseURL, RedisURL: opts.RedisURL, Keep: opts.Keep, DBMaxConns: opts.DBMaxConns,
		Lots: lots, HoldTTL: sc.HoldTTL, LotRate: lotRate,
		PrivatePostgres: sc.Private, PrivateRedis: sc.Private, SmallDisks: sc.Private,
		EarlyGrace: sc.EarlyGrace, ExitGrace: sc.ExitGrace, Pulse: pulse,
		Progress: opts.Progress,
	})
	if err != nil {
		return nil, err
	}
	out := &Outcome{}
	defer func() {
		if opts.Keep {
			out.Dir = st.Dir
			opts.logf("kept: schema %s, processes' files in %s", st.Schema, st.Dir)
		}
		if err := st.Close(); err != nil {
			opts.logf("shutdown: %v", err)
		}
	}()
	if opts.AfterStart != nil {
		if err := opts.AfterStart(ctx, st); err != nil {
			return nil, fmt.Errorf("after start: %w", err)
		}
	}

	run := &sim.Run{Config: sim.Config{
		Scenario: sc.Name, Seed: int64(opts.Seed), Lots: sz.Lots, Spots: sz.Spots, Drivers: sz.Drivers,
		Duration: sz.Duration, Load: sc.Load, Rate: sz.Rate, HoldTTL: sc.HoldTTL,
		EarlyGrace: sc.EarlyGrace, ExitGrace: sc.ExitGrace,
	}}
	run.Lots = st.Lots()

	journeys := make([]sim.Journey, len(plans))
	for i := range plans {
		plans[i].Lot %= sz.Lots
		journeys[i] = sim.Journey{Driver: i, Plate: plates[i], Plan: plans[i]}
	}
	tlots := make([]traffic.Lot, len(st.Edges))
	for i, e := range st.Edges {
		lat, lng := stack.LotLocation(i)
		tlots[i] = traffic.Lot{Lot: e.Lot, Lat: lat, Lng: lng, Uplink: e}
		if e.Pins != nil {
			tlots[i].Pins = e.Pins
		}
	}
	t0 := time.Now().Add(500 * time.Millisecond)
	run.Started = t0
	world := traffic.New(traffic.Config{
		CloudURL: st.CloudURL, Lots: tlots, Payments: st.Stripe, Webhooks: st.Webhooks,
		EarlyGrace: sc.EarlyGrace, ExitGrace: sc.ExitGrace, Pulse: pulse,
		Noise: sc.Noise, Seed: opts.Seed, Start: t0, LossyCloudURL: st.LossyURL, AdminToken: st.AdminToken,
	}, journeys)

	// The traffic plays out by itself; the hard deadline only stops a run
	// that hangs.
	trafficCtx, stopTraffic := context.WithDeadline(ctx, t0.Add(2*sz.Duration+60*time.Second))
	defer stopTraffic()
	var faults []Fault
	if sc.Faults != nil {
		faults = sc.Faults(sz)
	}
	fr := &faultRunner{st: st, t0: t0, log: opts.logf}
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); fr.run(trafficCtx, faults) }()
	progressDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); progress(progressDone, &opts, world, st, t0, sz.Duration) }()
	sampler := &seqSampler{st: st}
	samplerCtx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); sampler.run(samplerCtx, downSample) }()
	world.Run(trafficCtx)
	// Every scheduled fault happens, even when the cars are done before it:
	// a webhook redelivered after the last car is still a redelivery.
	<-faultsDone
	run.Ended = time.Now()
	close(progressDone)
	wg.Wait()
	stopTraffic()
	run.Faults = fr.done()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	world.Ledger().Fill(run)
	opts.logf("traffic over after %s; settling (up to %s)", run.Ended.Sub(t0).Round(time.Second), opts.Settle)
	settle(ctx, &opts, st, run)
	run.Settled = time.Now()
	stopSampler()
	<-samplerDone
	run.EdgeSeqs, run.EdgeSeqEvery = sampler.samples, downSample
	if err := st.Collect(ctx, run); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	if opts.BeforeCheck != nil {
		if err := opts.BeforeCheck(ctx, st, run); err != nil {
			return nil, fmt.Errorf("before check: %w", err)
		}
	}
	results := check.Evaluate(run)
	for _, e := range sc.Expect {
		results = append(results, e(run))
	}
	results = append(results, processesUp(st))
	sum := report.Summarize(run, results)
	out.Run, out.Results, out.Summary, out.Pass = run, results, sum, check.Passed(results)
	out.FaultTable = FaultTable(run)
	if opts.ReportDir != "" {
		if err := writeReport(&opts, st, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeReport writes the report files and, for a failed run, the logs of
// its processes next to them: they explain a failure, and they are small.
func writeReport(opts *Options, st *stack.Stack, out *Outcome) error {
	if err := out.Summary.WriteFiles(opts.ReportDir); err != nil {
		return err
	}
	if len(out.FaultTable) > 0 {
		md := filepath.Join(out.Summary.Files.Dir, "faults.md")
		if err := os.WriteFile(md, []byte(FaultMarkdown(out.FaultTable, out.Results)), 0o644); err != nil {
			return fmt.Errorf("fault table: %w", err)
		}
		opts.logf("fault table: %s", md)
	}
	if out.Pass {
		return nil
	}
	logs := filepath.Join(out.Summary.Files.Dir, "logs")
	err := copyLogs(st.Dir, logs)
	if err == nil {
		err = os.WriteFile(filepath.Join(logs, "mosquitto.log"), []byte(st.Broker.Log()), 0o644)
	}
	if err != nil {
		opts.logf("copy logs: %v", err)
	} else {
		opts.logf("logs of the run's processes: %s", logs)
	}
	return nil
}

// processesUp: no part of the system died during the run. A crash is a
// failure even if the invariants happened to hold.
func processesUp(st *stack.Stack) check.Result {
	r := check.Result{Name: "system:processes_up", Title: "parkcloud and every parkedge stayed up",
		Source: "simulator: child processes"}
	procs := []*stack.Proc{st.Cloud}
	for _, e := range st.Edges {
		procs = append(procs, e.Proc)
	}
	for _, p := range procs {
		r.Checked++
		if exited, err := p.Exited(); exited {
			r.Failed++
			// The run's directory goes at Close; writeReport keeps the
			// logs of a failed run under the report's logs/.
			r.Violations = append(r.Violations, fmt.Sprintf("%s exited during the run (%v); see logs/%s next to the report", p.Name, err, filepath.Base(p.LogPath)))
		}
	}
	if !st.Broker.Running() {
		r.Failed++
		r.Violations = append(r.Violations, "the broker is not running")
	}
	r.Pass = r.Failed == 0
	return r
}

// copyLogs copies the *.log files of dir into dst.
func copyLogs(dir, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return err
	}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// settle waits until the system has caught up with the traffic: every
// answered read's event is in the cloud, the edges' outboxes are empty and
// their uplinks restored, the stand-in has no delivery in flight, every
// paid-but-not-honoured reservation is refunded, and every late exit's
// overstay is priced and has its Checkout Session. It returns when all hold or
// when opts.Settle has passed; the invariants then say what did not.
func settle(ctx context.Context, opts *Options, st *stack.Stack, run *sim.Run) {
	for _, e := range st.Edges {
		e.Restore()
	}
	want := map[string]bool{}
	for _, r := range run.Reads {
		if r.EventID != "" {
			want[r.EventID] = true
		}
	}
	deadline := time.Now().Add(opts.Settle)
	start := time.Now()
	lastNote := time.Now()
	for {
		var pending []string
		if have, err := st.GateEventIDs(ctx); err == nil {
			missing := 0
			for id := range want {
				if !have[id] {
					missing++
				}
			}
			if missing > 0 {
				pending = append(pending, fmt.Sprintf("%d events", missing))
			}
		}
		for _, e := range st.Edges {
			if s := st.EdgeState(ctx, e); s.OutboxDepth > 0 {
				pending = append(pending, fmt.Sprintf("%s outbox %d", e.Lot.Name, s.OutboxDepth))
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		if seqs, err := st.LotSeqs(ctx); err == nil {
			for _, e := range st.Edges {
				if s := st.EdgeState(ctx, e); s.SyncSeq < seqs[e.Lot.ID] {
					pending = append(pending, fmt.Sprintf("%s changes %d/%d", e.Lot.Name, s.SyncSeq, seqs[e.Lot.ID]))
				}
			}
		}
		if st.Stripe.Flush(fctx) != nil {
			pending = append(pending, "webhooks in flight")
		}
		cancel()
		if n := unrefunded(ctx, st); n > 0 {
			pending = append(pending, fmt.Sprintf("%d refunds", n))
		}
		if n := st.UnpricedOverstays(ctx); n > 0 {
			pending = append(pending, fmt.Sprintf("%d overstays unpriced or unbilled", n))
		}
		if len(pending) == 0 {
			opts.logf("settled in %s", time.Since(start).Round(10*time.Millisecond))
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			opts.logf("not settled after %s: still waiting for %s", opts.Settle, strings.Join(pending, ", "))
			return
		}
		if time.Since(lastNote) > 5*time.Second {
			opts.logf("  settling: waiting for %s", strings.Join(pending, ", "))
			lastNote = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unrefunded counts paid sessions whose reservation the cloud did not honour
// and has not yet refunded.
func unrefunded(ctx context.Context, st *stack.Stack) int {
	pays, refunds, _ := st.StripeState()
	done := map[string]bool{}
	for _, r := range refunds {
		done[r.PaymentIntentID] = true
	}
	n := 0
	for _, p := range pays {
		if !p.Paid() || done[p.PaymentIntentID] {
			continue
		}
		status, err := st.ReservationStatus(ctx, p.ReservationID)
		if err != nil {
			continue
		}
		switch status {
		case "CONFIRMED", "CHECKED_IN", "COMPLETED":
		case "PENDING":
			// Paid and not yet processed, or paid at the last moment.
			n++
		default:
			n++
		}
	}
	return n
}

// progress prints a line every few seconds while the traffic runs.
func progress(done <-chan struct{}, opts *Options, w *traffic.World, st *stack.Stack, t0 time.Time, d time.Duration) {
	if opts.Progress == nil {
		return
	}
	every := 5 * time.Second
	if d <= 30*time.Second {
		every = 3 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		p := w.Ledger().Progress()
		var cut []string
		for _, e := range st.Edges {
			if e.IsCut() {
				cut = append(cut, e.Lot.Name)
			}
		}
		note := ""
		if len(cut) > 0 {
			note = "  [offline: " + strings.Join(cut, ", ") + "]"
		}
		if !st.Broker.Running() {
			note += "  [broker down]"
		}
		el := time.Since(t0).Round(time.Second)
		fmt.Fprintf(opts.Progress, "  %s/%s  holds %d  paid %d  reads %d  entered %d  left %d  inside %d%s\n",
			clock(el), clock(d), p.Holds, p.Paid, p.Reads, p.Entered, p.Exited, p.Inside, note)
	}
}

func clock(d time.Duration) string {
	s := int(d / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// downSample is how often the edges' applied sequence numbers are read:
// the resolution of the cloud → edge lag. Changes carry no commit time, so
// an edge cannot measure the lag itself; reading /v1/gates this often costs
// each agent a few tiny requests per second.
const downSample = 25 * time.Millisecond

// seqSampler records each edge's applied sequence number as it moves, for
// the cloud → edge sync lag.
type seqSampler struct {
	st      *stack.Stack
	samples []sim.SeqSample
}

func (s *seqSampler) run(ctx context.Context, every time.Duration) {
	last := map[string]int64{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, e := range s.st.Edges {
			seq, err := s.st.AppliedSeq(ctx, e)
			if err != nil || seq == last[e.Lot.ID] {
				continue
			}
			last[e.Lot.ID] = seq
			s.samples = append(s.samples, sim.SeqSample{LotID: e.Lot.ID, At: time.Now(), Seq: seq})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
