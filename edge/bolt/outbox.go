package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

// Record implements edge.Store: the presence change takes effect now, the
// event is committed by the writer with whatever else is queued.
func (s *Store) Record(rec edge.Record) <-chan error {
	done := make(chan error, 1)
	if len(rec.Event.GateID) > 255 || len(rec.Event.EventID) > 255 {
		done <- fmt.Errorf("record: gate or event id longer than 255 bytes")
		return done
	}
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	if s.closed {
		done <- ErrClosed
		return done
	}
	switch pc := rec.Presence; pc.Op {
	case edge.PresenceEnter:
		s.pmu.Lock()
		s.setPresence(pc.Plate, &pc.Presence)
		s.pmu.Unlock()
	case edge.PresenceLeave:
		s.pmu.Lock()
		s.setPresence(pc.Plate, nil)
		s.pmu.Unlock()
	}
	s.queue <- &pending{rec: rec, done: done}
	return done
}

// seal signs a queued event and encodes it as it will be published. It runs
// in the writer, not in Record, because Record is called on the path from
// plate read to barrier and a signature costs tens of microseconds.
func (s *Store) seal(p *pending) {
	if p.payload != nil {
		return // held from a failed commit: sealed already
	}
	p.rec.Event.Sign(s.key)
	p.payload, p.err = protocol.Encode(p.rec.Event)
}

// writer commits queued records: it takes everything that queued while the
// previous fsync ran, up to maxBatch, into one transaction.
//
// When a commit fails — the disk is full, the file system went read-only —
// the gate must keep deciding: a driver is not kept at the barrier because
// the agent cannot write. The batch is then held in memory (up to MaxHeld
// records) and answered as accepted, Writable turns false, and the writer
// tries again every RetryEvery and before each new batch; once the disk
// takes them they are committed in order and published as usual. Only what
// is held when the process dies is lost, which is the price of deciding at
// all with no disk; past MaxHeld, records are refused with the error.
func (s *Store) writer() {
	defer close(s.done)
	var held []*pending
	retry := time.NewTicker(s.retryEvery)
	defer retry.Stop()
	for {
		var batch []*pending
		open := true
		if len(held) == 0 {
			first, ok := <-s.queue
			if !ok {
				return
			}
			batch = append(batch, first)
		} else {
			select {
			case first, ok := <-s.queue:
				if ok {
					batch = append(batch, first)
				} else {
					open = false
				}
			case <-retry.C:
			}
		}
	more:
		for open && len(batch) < s.maxBatch {
			select {
			case p, ok := <-s.queue:
				if !ok {
					open = false
					break more
				}
				batch = append(batch, p)
			default:
				break more
			}
		}
		sealed := 0
		for _, p := range batch {
			if s.seal(p); p.err == nil {
				sealed++
			}
		}
		all := append(held, batch...)
		err := s.commit(all)
		if err != nil {
			err = fmt.Errorf("commit %d events: %w", len(all), err)
			if s.writable.Swap(false) {
				s.log.Error("store not writable: the gates keep deciding; events are held in memory until it is",
					"err", err, "max_held", s.maxHeld)
			}
			held = held[:len(held):len(held)]
			for _, p := range batch {
				switch {
				case p.err != nil:
					p.done <- p.err
				case len(held) < s.maxHeld:
					held = append(held, p)
					p.done <- nil
				default:
					p.done <- err
				}
			}
			s.heldN.Store(int64(len(held)))
			if !open {
				s.log.Error("store closed while not writable: events lost", "events", len(held), "err", err)
				return
			}
			continue
		}
		if !s.writable.Swap(true) {
			s.log.Info("store writable again", "events_written", len(held))
		}
		s.depth.Add(int64(len(held) + sealed))
		held = nil
		s.heldN.Store(0)
		select {
		case s.signal <- struct{}{}:
		default:
		}
		for _, p := range batch {
			p.done <- p.err
		}
		if !open {
			return
		}
	}
}

// commit writes the sealed records of batch in one transaction.
func (s *Store) commit(batch []*pending) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		out, pres := tx.Bucket(bucketOutbox), tx.Bucket(bucketPresence)
		for _, p := range batch {
			if p.err != nil {
				continue
			}
			seq, err := out.NextSequence()
			if err != nil {
				return err
			}
			if err := out.Put(u64(seq), encodeEntry(p.rec.Event.GateID, p.rec.Event.EventID, p.payload)); err != nil {
				return err
			}
			switch pc := p.rec.Presence; pc.Op {
			case edge.PresenceEnter:
				if !s.stillInside(pc.Plate, pc.Presence.EnteredAt) {
					// A presence reset from the cloud took it back
					// before this commit (see forgetInside).
					continue
				}
				b, err := json.Marshal(pc.Presence)
				if err != nil {
					return err
				}
				if err := pres.Put([]byte(pc.Plate), b); err != nil {
					return err
				}
			case edge.PresenceLeave:
				if err := pres.Delete([]byte(pc.Plate)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Writable reports whether the last commit succeeded: false while the disk
// refuses writes and events are held in memory.
func (s *Store) Writable() bool { return s.writable.Load() }

// Held is how many events are held in memory, waiting for the disk.
func (s *Store) Held() int { return int(s.heldN.Load()) }

// Pending implements edge.Outbox.
func (s *Store) Pending(limit int) ([]edge.OutboxEntry, error) {
	var out []edge.OutboxEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// Ack implements edge.Outbox.
func (s *Store) Ack(keys []uint64) error {
	if len(keys) == 0 {
		return nil
	}
	removed := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		removed = 0
		for _, k := range keys {
			key := u64(k)
			if b.Get(key) == nil {
				continue
			}
			if err := b.Delete(key); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack outbox: %w", err)
	}
	s.depth.Add(-int64(removed))
	return nil
}

// Depth implements edge.Outbox.
func (s *Store) Depth() int { return int(s.depth.Load()) }

// Signal implements edge.Outbox.
func (s *Store) Signal() <-chan struct{} { return s.signal }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// An outbox value is: gate id length, gate id, event id length, event id,
// then the event JSON as it will be published; the ids are kept apart so
// draining never parses JSON.
func encodeEntry(gateID, eventID string, payload []byte) []byte {
	v := make([]byte, 0, 2+len(gateID)+len(eventID)+len(payload))
	v = append(v, byte(len(gateID)))
	v = append(v, gateID...)
	v = append(v, byte(len(eventID)))
	v = append(v, eventID...)
	return append(v, payload...)
}

func decodeEntry(k, v []byte) (edge.OutboxEntry, error) {
	bad := fmt.Errorf("outbox entry %x: malformed", k)
	if len(k) != 8 || len(v) < 1 {
		return edge.OutboxEntry{}, bad
	}
	g := int(v[0])
	if len(v) < 1+g+1 {
		return edge.OutboxEntry{}, bad
	}
	gate := string(v[1 : 1+g])
	v = v[1+g:]
	n := int(v[0])
	if len(v) < 1+n {
		return edge.OutboxEntry{}, bad
	}
	return edge.OutboxEntry{
		Key:     binary.BigEndian.Uint64(k),
		GateID:  gate,
		EventID: string(v[1 : 1+n]),
		Payload: append([]byte(nil), v[1+n:]...),
	}, nil
}
