package scenario

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/stack"
)

// faultRunner injects the scheduled faults and records when they happened.
type faultRunner struct {
	st  *stack.Stack
	t0  time.Time
	log func(string, ...any)

	mu     sync.Mutex
	faults []sim.Fault
}

func (f *faultRunner) record(x sim.Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, x)
	f.mu.Unlock()
}

func (f *faultRunner) done() []sim.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]sim.Fault(nil), f.faults...)
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func (f *faultRunner) run(ctx context.Context, faults []Fault) {
	var wg sync.WaitGroup
	for _, x := range faults {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !wait(ctx, f.t0.Add(x.At)) {
				return
			}
			switch x.Kind {
			case FaultEdgeCut:
				f.cut(ctx, x)
			case FaultBrokerRestart:
				f.restart()
			case FaultWebhookRedeliver:
				f.redeliver()
			case FaultEdgeDiskFull:
				f.diskFull(ctx, x)
			case FaultWebhookReplay:
				f.replay(ctx)
			case FaultPGRestart, FaultRedisRestart, FaultCloudKill, FaultEdgeKill:
				f.crash(ctx, x)
			}
		}()
	}
	wg.Wait()
}

func wait(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func (f *faultRunner) cut(ctx context.Context, x Fault) {
	e := f.st.Edges[x.Lot%len(f.st.Edges)]
	at := time.Now()
	e.Cut()
	f.log("  fault: %s uplink cut for %s", e.Lot.Name, x.For)
	wait(ctx, at.Add(x.For)) // restored early when the run ends
	e.Restore()
	f.log("  fault: %s uplink restored", e.Lot.Name)
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(FaultEdgeCut), Target: e.Lot.Name,
		Detail: "broker and cloud API unreachable"})
}

func (f *faultRunner) restart() {
	at := time.Now()
	f.log("  fault: restarting the broker")
	detail := "ok"
	if err := f.st.RestartBroker(); err != nil {
		detail = err.Error()
	} else if err := f.edgesOnline(context.Background()); err != nil {
		detail = err.Error()
	}
	f.log("  fault: broker back, every edge reconnected after %s", time.Since(at).Round(time.Millisecond))
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(FaultBrokerRestart), Target: "mosquitto", Detail: detail})
}

// redeliver sends every payment event so far again, twice, newest first:
// duplicates and reordering at once, as Stripe's retries produce them.
func (f *faultRunner) redeliver() {
	at := time.Now()
	var ids []string
	for _, e := range f.st.Stripe.Events() {
		ids = append(ids, e.ID)
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	detail := fmt.Sprintf("%d events ×2, newest first", len(ids))
	if len(ids) > 0 {
		// Two calls: two deliveries of each event racing each other.
		for range 2 {
			if err := f.st.Stripe.Redeliver(ids...); err != nil {
				detail = "error: " + err.Error()
			}
		}
	}
	f.log("  fault: webhooks redelivered (%s)", detail)
	f.record(sim.Fault{At: at, Kind: string(FaultWebhookRedeliver), Target: "stripe", Detail: detail})
}

// crash restarts or kills a part of the system and records the fault
// until the system is whole again: the cloud ready (/readyz 200: Postgres
// answering), every edge connected to the broker.
func (f *faultRunner) crash(ctx context.Context, x Fault) {
	at := time.Now()
	var target string
	var err error
	switch x.Kind {
	case FaultPGRestart:
		target = "postgres"
		err = f.st.RestartPostgres()
	case FaultRedisRestart:
		target = "redis"
		err = f.st.RestartRedis()
	case FaultCloudKill:
		target = "parkcloud"
		err = f.st.KillCloud(ctx)
	case FaultEdgeKill:
		i := x.Lot % len(f.st.Edges)
		target = "parkedge-" + f.st.Edges[i].Lot.Name
		err = f.st.KillEdge(ctx, i)
	}
	f.log("  fault: %s %s", x.Kind, target)
	if err == nil {
		err = f.st.WaitReady(ctx, time.Minute)
	}
	if err == nil {
		err = f.edgesOnline(ctx)
	}
	detail := "ok"
	if err != nil {
		detail = err.Error()
	}
	f.log("  fault: %s: whole again after %s (%s)", x.Kind, time.Since(at).Round(time.Millisecond), detail)
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(x.Kind), Target: target, Detail: detail})
}

// edgesOnline waits until every edge whose uplink is not cut says it is
// connected to the broker.
func (f *faultRunner) edgesOnline(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var off []string
		for _, e := range f.st.Edges {
			if !e.IsCut() && !f.st.EdgeState(ctx, e).Online {
				off = append(off, e.Lot.Name)
			}
		}
		if len(off) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("edges not reconnected: %v", off)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replay posts every delivery the cloud accepted so far again, unchanged:
// a captured request sent by someone else. The invariants then show it
// changed nothing (no second confirmation, no second refund).
func (f *faultRunner) replay(ctx context.Context) {
	at := time.Now()
	acked, refused, err := f.st.Webhooks.Replay(ctx)
	detail := fmt.Sprintf("%d deliveries replayed: %d acknowledged as duplicates, %d refused", acked+refused, acked, refused)
	if err != nil {
		detail = "error: " + err.Error() + " (after " + detail + ")"
	}
	f.log("  fault: webhooks replayed (%s)", detail)
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(FaultWebhookReplay), Target: "cloud webhook", Detail: detail})
}

// diskFull fills a lot's disk and cuts its uplink for x.For, so the edge
// must keep deciding while its outbox grows on a disk with no room: the
// store refuses the write, holds the events in memory and says so. Then it
// gives the room back and restores the link; the fault lasts until the
// edge's store is writable again with nothing held and it is connected.
func (f *faultRunner) diskFull(ctx context.Context, x Fault) {
	i := x.Lot % len(f.st.Edges)
	e := f.st.Edges[i]
	at := time.Now()
	release, err := f.st.FillDisk(i)
	if err != nil {
		f.log("  fault: %s disk full skipped: %v", e.Lot.Name, err)
		f.record(sim.Fault{At: at, Until: at, Kind: string(FaultEdgeDiskFull), Target: e.Lot.Name, Detail: "skipped: " + err.Error()})
		return
	}
	e.Cut()
	f.log("  fault: %s disk full, uplink cut, for %s", e.Lot.Name, x.For)
	var refusedAfter time.Duration
	maxHeld := 0.0
	end := at.Add(x.For)
	for time.Now().Before(end) && ctx.Err() == nil {
		if h, err := f.st.EdgeHealth(ctx, e); err == nil {
			if w, _ := h["store_writable"].(bool); !w && refusedAfter == 0 {
				refusedAfter = time.Since(at)
			}
			if n, _ := h["store_held_events"].(float64); n > maxHeld {
				maxHeld = n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	rerr := release()
	e.Restore()
	detail := "the store never refused a write: it had free pages of its own in its file"
	if refusedAfter > 0 {
		detail = fmt.Sprintf("the store refused writes %s after the disk filled and held up to %.0f events in memory; the gate kept deciding",
			refusedAfter.Round(100*time.Millisecond), maxHeld)
	}
	if rerr != nil {
		detail = "error: " + rerr.Error()
	} else if err := f.storeWritable(ctx, e); err != nil {
		detail = "error: " + err.Error()
	} else if err := f.edgesOnline(ctx); err != nil {
		detail = "error: " + err.Error()
	}
	f.log("  fault: %s disk has room again: %s", e.Lot.Name, detail)
	f.record(sim.Fault{At: at, Until: time.Now(), Kind: string(FaultEdgeDiskFull), Target: e.Lot.Name, Detail: detail})
}

// storeWritable waits until the edge's store writes again with nothing
// held in memory.
func (f *faultRunner) storeWritable(ctx context.Context, e *stack.Edge) error {
	deadline := time.Now().Add(time.Minute)
	for {
		h, err := f.st.EdgeHealth(ctx, e)
		if err == nil {
			w, _ := h["store_writable"].(bool)
			n, _ := h["store_held_events"].(float64)
			if w && n == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("store of %s not writable a minute after the disk had room: %v %v", e.Lot.Name, h, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
