package mqttlink

import (
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/protocol"
)

// drainer publishes the outbox whenever it may have something to send.
func (l *Link) drainer() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.store.Signal():
		case <-l.wake:
		case <-tick.C:
		}
		if err := l.drain(); err != nil {
			l.log.Warn("outbox drain stopped", "err", err)
		}
	}
}

var errUnconfirmed = errors.New("publishes not confirmed on this connection")

// drain sends the outbox oldest first, a window at a time, and removes what
// the broker acknowledged on the connection it was sent on.
func (l *Link) drain() error {
	for l.ctx.Err() == nil {
		// Read the counters before checking the connection: an attempt or
		// resume after this point must make the window untrusted.
		attempts, resumes := l.attempts.Load(), l.pstore.resumes.Load()
		if !l.client.IsConnectionOpen() || !l.pstore.ready() || !l.mayPublish() {
			return nil
		}
		entries, err := l.store.Pending(l.cfg.Window)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		tokens := make([]mqtt.Token, 0, len(entries))
		for _, e := range entries {
			if !l.pstore.ready() || l.attempts.Load() != attempts {
				break // a reconnect began: wait for its resume, then start again from the oldest
			}
			tokens = append(tokens, l.client.Publish(protocol.GateEventsTopic(l.cfg.LotID, e.GateID), 1, false, e.Payload))
		}
		deadline := time.Now().Add(l.cfg.PublishTimeout)
		acked := make([]uint64, 0, len(entries))
		for i, t := range tokens {
			if !t.WaitTimeout(time.Until(deadline)) {
				break
			}
			if t.Error() == nil && l.attempts.Load() == attempts && l.pstore.resumes.Load() == resumes {
				acked = append(acked, entries[i].Key)
			}
		}
		if err := l.store.Ack(acked); err != nil {
			return err
		}
		l.published.Add(uint64(len(acked)))
		if len(acked) < len(entries) {
			return fmt.Errorf("%d of %d: %w", len(entries)-len(acked), len(entries), errUnconfirmed)
		}
	}
	return nil
}
