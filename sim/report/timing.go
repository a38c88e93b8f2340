package report

import (
	"time"

	"github.com/parkgate/parkgate/sim"
)

// latency fills the gate's speed and picks what the histogram shows: the
// barrier relay's timing where fake pins recorded it, else the answer time.
func (s *Summary) latency(run *sim.Run) {
	var barrier, answer, decided, trigger []time.Duration
	untriggered := 0
	for _, rd := range run.Reads {
		if !rd.LoopAt.IsZero() {
			if rd.TriggerAt.IsZero() {
				untriggered++
			} else {
				trigger = append(trigger, rd.TriggerAt.Sub(rd.LoopAt))
			}
		}
		if rd.Decision == "" {
			continue
		}
		answer = append(answer, rd.RTT)
		decided = append(decided, time.Duration(rd.DecidedInUs)*time.Microsecond)
		if rd.Open() && !rd.BarrierAt.IsZero() {
			barrier = append(barrier, rd.BarrierAt.Sub(rd.SentAt))
		}
	}
	s.Latency = Latency{ReadToBarrier: NewStats(barrier), ReadToAnswer: NewStats(answer), Decision: NewStats(decided),
		LoopToTrigger: NewStats(trigger), Untriggered: untriggered}
	src, kind := barrier, "camera read → barrier relay"
	if len(src) == 0 {
		src, kind = answer, "camera read → gate answer"
	}
	s.Series.Latency, s.Series.LatencyKind = histogram(src), kind
}

func (s *Summary) sync(run *sim.Run) {
	var on, off []time.Duration
	for _, ge := range run.GateEvents {
		lag := ge.ReceivedAt.Sub(ge.OccurredAt)
		if lag < 0 {
			lag = 0
		}
		if ge.Offline {
			off = append(off, lag)
		} else {
			on = append(on, lag)
		}
	}
	s.Sync = Sync{Lag: NewStats(on), OfflineLag: NewStats(off), Events: len(run.GateEvents)}
	s.Sync.Down, s.Sync.DownEvery = downLag(run), run.EdgeSeqEvery
}

// downLag is, for every reservation change sent to the edges, the time
// from its commit to the first sample of its lot's edge at or past its
// sequence number. A silent change goes nowhere.
func downLag(run *sim.Run) Stats {
	byLot := map[string][]sim.SeqSample{}
	for _, x := range run.EdgeSeqs {
		byLot[x.LotID] = append(byLot[x.LotID], x)
	}
	var lags []time.Duration
	for _, c := range run.Changes {
		if c.CreatedAt.IsZero() || c.Silent != 0 {
			continue
		}
		for _, x := range byLot[c.LotID] {
			if x.Seq >= c.Seq && !x.At.Before(c.CreatedAt) {
				lags = append(lags, x.At.Sub(c.CreatedAt))
				break
			}
		}
	}
	return NewStats(lags)
}
