package mqttlink

import (
	"encoding/json"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/protocol"
)

// maxPending bounds the reorder buffer; beyond it changes are dropped and
// fetched again by catch-up.
const maxPending = 100_000

// onMessage runs in paho's router, in arrival order. It checks and
// verifies; the applier orders and stores.
func (l *Link) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != l.resTopic {
		l.invalid.Add(1)
		return
	}
	var c protocol.ReservationChange
	if err := json.Unmarshal(m.Payload(), &c); err != nil {
		l.invalid.Add(1)
		l.log.Warn("undecodable change", "err", err)
		return
	}
	if err := l.check(&c); err != nil {
		return
	}
	select {
	case l.live <- c:
	case <-l.ctx.Done():
	}
}

// check validates the envelope of a change and verifies it, counting what
// it refuses. Only the envelope is checked before the signature: a change
// whose body this build cannot use (a kind added after it, an op it does
// not know) is passed on once it verifies, and applied as a no-op (flush),
// because refusing it would stop the lot's stream at its seq for good —
// every later change waits for it, and catch-up fetches it again and again.
// An unsigned one is refused: else a forger could burn a seq with it.
func (l *Link) check(c *protocol.ReservationChange) error {
	if err := c.CheckEnvelope(); err != nil {
		l.invalid.Add(1)
		l.log.Warn("invalid change refused", "seq", c.Seq, "err", err)
		return err
	}
	if c.LotID != l.cfg.LotID {
		l.invalid.Add(1)
		l.log.Warn("change for another lot refused", "lot_id", c.LotID, "seq", c.Seq)
		return fmt.Errorf("change for lot %q", c.LotID)
	}
	if err := c.Verify(l.cfg.Keys); err != nil {
		l.badSigs.Add(1)
		l.log.Warn("change with a bad signature refused", "seq", c.Seq, "kind", c.Kind, "reservation_id", c.Reservation.ID)
		return err
	}
	return nil
}

// applier owns the reorder buffer: every change, live or caught up, passes
// through it and is applied only when it continues the applied sequence.
func (l *Link) applier() {
	pending := map[int64]protocol.ReservationChange{}
	var gapTimer *time.Timer
	var gapC, retryC <-chan time.Time
	for {
		var batch []protocol.ReservationChange
		select {
		case <-l.ctx.Done():
			return
		case c := <-l.live:
			batch = append(batch, c)
		more:
			for len(batch) < 1000 {
				select {
				case c := <-l.live:
					batch = append(batch, c)
				default:
					break more
				}
			}
		case page := <-l.caught:
			batch = page
		case <-gapC:
			gapC = nil
			if len(pending) > 0 {
				l.log.Info("gap in reservation changes; catching up", "applied", l.applied.Load())
				l.requestCatchUp()
			}
			continue
		case <-retryC:
			retryC = nil
		}
		applied := l.applied.Load()
		for _, c := range batch {
			if _, dup := pending[c.Seq]; c.Seq <= applied || dup {
				l.duplicates.Add(1)
				continue
			}
			if len(pending) >= maxPending {
				continue // catch-up fetches it again
			}
			pending[c.Seq] = c
		}
		if err := l.flush(pending); err != nil {
			l.log.Error("applying changes failed", "err", err)
			if retryC == nil {
				retryC = time.After(time.Second)
			}
		}
		if len(pending) == 0 {
			l.gapOpen.Store(false)
			if gapTimer != nil {
				gapTimer.Stop()
			}
			gapC = nil
		} else {
			l.gapOpen.Store(true)
			if gapC == nil {
				gapTimer = time.NewTimer(l.cfg.GapWait)
				gapC = gapTimer.C
			}
		}
	}
}

// flush applies the run of pending changes that continues the applied seq.
func (l *Link) flush(pending map[int64]protocol.ReservationChange) error {
	applied := l.applied.Load()
	var run []protocol.ReservationChange
	for next := applied + 1; ; next++ {
		c, ok := pending[next]
		if !ok {
			break
		}
		run = append(run, c)
	}
	if len(run) == 0 {
		return nil
	}
	last, err := l.store.Apply(run)
	if err != nil {
		return err
	}
	for i := range run {
		if err := run[i].Validate(); err != nil {
			l.skipped.Add(1)
			l.log.Warn("change this agent cannot use skipped; its seq is applied", "seq", run[i].Seq,
				"kind", run[i].Kind, "op", run[i].Op, "err", err)
			continue
		}
		if run[i].Kind == protocol.KindGateOpen && run[i].Seq > applied && run[i].Seq <= last && l.cfg.OnCommand != nil {
			l.cfg.OnCommand(run[i])
		}
	}
	for _, c := range run {
		delete(pending, c.Seq)
	}
	l.applied.Store(last)
	signal(l.statusDue)
	l.appliedN.Add(uint64(len(run)))
	if l.cfg.OnApplied != nil {
		l.cfg.OnApplied(last)
	}
	return nil
}
