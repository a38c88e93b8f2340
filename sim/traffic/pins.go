package traffic

import (
	"context"
	"sort"
	"time"

	"github.com/parkgate/parkgate/sim"
)

// MatchBarriers sets BarrierAt of every open read to the barrier relay's
// rising edge that answered it. edges are the rising edges by "lot
// id/gate id", in time order. A lane holds one car at a time and the car
// waits out the pulse, so the answer to an open is the first rising edge
// at or after the read was sent, if it came before the answer did; an
// edge before any read (an override, a stray) answers nothing.
func MatchBarriers(reads []sim.Read, edges map[string][]time.Time) {
	byGate := map[string][]int{}
	for i, r := range reads {
		if r.Open() {
			k := r.LotID + "/" + r.GateID
			byGate[k] = append(byGate[k], i)
		}
	}
	for k, idx := range byGate {
		sort.Slice(idx, func(a, b int) bool { return reads[idx[a]].SentAt.Before(reads[idx[b]].SentAt) })
		es, used := edges[k], 0
		for _, i := range idx {
			r := &reads[i]
			for used < len(es) && es[used].Before(r.SentAt) {
				used++
			}
			if used < len(es) && !es[used].After(r.SentAt.Add(r.RTT+50*time.Millisecond)) {
				r.BarrierAt = es[used]
				used++
			}
		}
	}
}

// recordPins collects the agents' pin edges every second, so the agents
// need not keep a long run's edges.
func (w *World) recordPins(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.takePins(ctx)
		}
	}
}

func (w *World) takePins(ctx context.Context) {
	for _, l := range w.cfg.Lots {
		w.takeLotPins(ctx, l)
	}
}

// takeLotPins moves the rising edges a lot's agent recorded into the world.
func (w *World) takeLotPins(ctx context.Context, l Lot) {
	if l.Pins == nil {
		return
	}
	w.pinsMu.Lock()
	defer w.pinsMu.Unlock()
	rising, err := l.Pins.Rising(ctx)
	if err != nil {
		return // the agent is busy or restarting; the next round catches up
	}
	for pin, es := range rising {
		k := l.ID + "/" + pin
		w.rising[k] = append(w.rising[k], es...)
	}
}

// waitTrigger waits for the camera trigger the loop detector fires, as a
// triggered LPR camera does before it reads, and returns its time; zero
// when none came within a short while (a free-running camera reads anyway).
func (w *World) waitTrigger(ctx context.Context, l Lot, gate string, since time.Time) time.Time {
	k := l.ID + "/" + gate + ".camera"
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		w.takeLotPins(ctx, l)
		w.pinsMu.Lock()
		for _, t := range w.rising[k] {
			if !t.Before(since) {
				w.pinsMu.Unlock()
				return t
			}
		}
		w.pinsMu.Unlock()
		if !sleep(ctx, 5*time.Millisecond) {
			break
		}
	}
	return time.Time{}
}
