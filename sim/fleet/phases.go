package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// The phases of a run, in order: steady load, the broker restart, and the
// checks with the entries that close it.

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
