package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

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
	p.rec.Event.Sign(s.key)
	p.payload, p.err = protocol.Encode(p.rec.Event)
}

// writer commits queued records: it takes everything that queued while the
// previous fsync ran, up to maxBatch, into one transaction.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*pending, 0, s.maxBatch)
	for first := range s.queue {
		batch = append(batch[:0], first)
	more:
		for len(batch) < s.maxBatch {
			select {
			case p, ok := <-s.queue:
				if !ok {
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
		err := s.db.Update(func(tx *bolt.Tx) error {
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
		if err != nil {
			err = fmt.Errorf("commit %d events: %w", len(batch), err)
			s.log.Error("outbox commit failed", "err", err)
		} else {
			s.depth.Add(int64(sealed))
			select {
			case s.signal <- struct{}{}:
			default:
			}
		}
		for _, p := range batch {
			if p.err != nil {
				p.done <- p.err
			} else {
				p.done <- err
			}
		}
	}
}

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
