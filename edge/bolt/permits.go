package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

// Permits are kept like reservations: by normalised plate and id (a plate
// may hold several, say this month's and next month's), with an id → plate
// index for a revoke, which names only the id; their plates are in the
// look-alike indexes too, so a noisy read of a permit plate is matched as one
// of a booked plate is.

// applyPermit stores (upsert) or removes (delete) the permit of a verified
// change. An upsert replaces what the permit was, so a permit moved to
// another plate leaves nothing behind under the old one.
func applyPermit(tx *bolt.Tx, c *protocol.ReservationChange) error {
	p, err := c.Permit()
	if errors.Is(err, protocol.ErrUnknownChange) || (c.Op != protocol.OpUpsert && c.Op != protocol.OpDelete) {
		return nil // signed, but nothing this build can use; the link counted it
	}
	if err := deletePermit(tx, p.ID); err != nil {
		return err
	}
	if c.Op == protocol.OpDelete {
		return nil
	}
	plate, err := protocol.NormalizePlate(p.Plate)
	if err != nil {
		return nil // no read can ever match it; keeping the seq moving matters more
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v[0:], uint64(p.ValidFrom.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], uint64(p.ValidUntil.UnixNano()))
	if err := tx.Bucket(bucketPermits).Put(resKey(plate, p.ID), v); err != nil {
		return err
	}
	if err := tx.Bucket(bucketPermitIDs).Put([]byte(p.ID), []byte(plate)); err != nil {
		return err
	}
	return indexPlate(tx, plate)
}

func deletePermit(tx *bolt.Tx, id string) error {
	return deleteIndexed(tx, bucketPermitIDs, bucketPermits, id)
}

func scanPermits(b *bolt.Bucket, plate string) ([]edge.Permit, error) {
	prefix := append([]byte(plate), 0)
	var out []edge.Permit
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) < 16 {
			return nil, fmt.Errorf("permit %s: %d-byte value", k[len(prefix):], len(v))
		}
		out = append(out, edge.Permit{
			ID:         string(k[len(prefix):]),
			Plate:      plate,
			ValidFrom:  time.Unix(0, int64(binary.BigEndian.Uint64(v[0:]))).UTC(),
			ValidUntil: time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
		})
	}
	if len(out) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].ValidFrom.Before(out[j].ValidFrom) })
	}
	return out, nil
}

// A presence reset from the cloud forgets that a plate is inside, once: the
// seq it comes with is applied once, like every change. It is an operator's
// answer to "this car left without a read", given maybe hours before an
// offline edge hears of it, so it must not undo what the edge saw after the
// operator asked: an entry recorded at or after IssuedAt stands. IssuedAt is
// the cloud's clock and EnteredAt the edge's, so an entry within their skew
// of the reset may be judged either way; the cost of a wrong guess is one
// plate whose anti-passback is loosened, or one more reset, never a car kept
// in (an exit opens for a car that is not known inside as long as it holds a
// reservation or permit that covers now).

// resetApplies reports whether a reset issued at issued clears a presence.
func resetApplies(p edge.Presence, issued time.Time) bool { return p.EnteredAt.Before(issued) }

// forgetInside clears from memory the plates the presence resets among
// changes clear, before the transaction that clears them on disk: a Record
// of the plate's entry queued before it then finds the plate gone and does
// not write it back (stillInside). Should the transaction fail, the reset
// stays pending and is applied again, so clearing memory first costs
// nothing.
func (s *Store) forgetInside(changes []protocol.ReservationChange) {
	last := s.lastSeq.Load()
	for i := range changes {
		c := &changes[i]
		if c.Seq <= last || c.Kind != protocol.KindPresenceReset || c.Op != protocol.OpReset {
			continue
		}
		r, err := c.PresenceReset()
		if err != nil {
			continue
		}
		plate, err := protocol.NormalizePlate(r.Plate)
		if err != nil {
			continue
		}
		s.pmu.Lock()
		p, ok := s.presence[plate]
		if ok && resetApplies(p, r.IssuedAt) {
			s.setPresence(plate, nil)
		}
		s.pmu.Unlock()
		switch {
		case !ok:
			s.log.Info("presence reset from the cloud: plate not inside", "plate", plate, "seq", c.Seq)
		case resetApplies(p, r.IssuedAt):
			s.log.Info("presence reset from the cloud", "plate", plate, "seq", c.Seq, "entered_at", p.EnteredAt, "issued_at", r.IssuedAt)
		default:
			s.log.Info("presence reset from the cloud left a later entry standing", "plate", plate, "seq", c.Seq,
				"entered_at", p.EnteredAt, "issued_at", r.IssuedAt)
		}
	}
}

// applyReset clears the plate's presence on disk under the same rule.
func applyReset(tx *bolt.Tx, c *protocol.ReservationChange) error {
	r, err := c.PresenceReset()
	if err != nil || c.Op != protocol.OpReset {
		return nil // signed, but nothing this build can use; the link counted it
	}
	plate, err := protocol.NormalizePlate(r.Plate)
	if err != nil {
		return nil
	}
	b := tx.Bucket(bucketPresence)
	v := b.Get([]byte(plate))
	if v == nil {
		return nil
	}
	var p edge.Presence
	if err := json.Unmarshal(v, &p); err != nil {
		return fmt.Errorf("presence %s: %w", plate, err)
	}
	if !resetApplies(p, r.IssuedAt) {
		return nil
	}
	return b.Delete([]byte(plate))
}

// stillInside reports whether memory still holds the plate as entered at
// enteredAt: the writer stores an entry only then.
func (s *Store) stillInside(plate string, enteredAt time.Time) bool {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	p, ok := s.presence[plate]
	return ok && p.EnteredAt.Equal(enteredAt)
}
