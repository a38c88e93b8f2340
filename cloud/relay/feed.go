package relay

import (
	"context"
	"crypto/ed25519"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// The catch-up feed serves GET /v1/edge/lots/{id}/changes: an edge that
// missed messages (offline, a new install, a gap in the seqs) reads its
// lot's change log from the seq it has, and trusts each change for the same
// signature the publisher's messages carry. The log comes from the store;
// the key stays here, so the store never signs.

var _ cloud.ChangeFeed = (*Feed)(nil)

// Feed is the signed catch-up read of the change log.
type Feed struct {
	log cloud.ChangeLog
	key ed25519.PrivateKey
}

// NewFeed returns a feed reading log and signing with key.
func NewFeed(log cloud.ChangeLog, key ed25519.PrivateKey) *Feed {
	return &Feed{log: log, key: key}
}

// Changes implements cloud.ChangeFeed.
func (f *Feed) Changes(ctx context.Context, lotID string, after int64, limit int) (protocol.ChangesPage, error) {
	p, err := f.log.ReadChanges(ctx, lotID, after, limit)
	if err != nil {
		return protocol.ChangesPage{}, err
	}
	page := protocol.ChangesPage{LotID: p.LotID, LastSeq: p.LastSeq, More: p.More,
		Changes: make([]protocol.ReservationChange, len(p.Changes))}
	for i := range p.Changes {
		page.Changes[i] = sign(&p.Changes[i], p.LotID, f.key)
	}
	return page, nil
}

// sign makes the message an edge receives for a change of the lot. Times go
// out in UTC, as the external contract says; the signature covers instants,
// so either would do.
func sign(c *cloud.Change, lotID string, key ed25519.PrivateKey) protocol.ReservationChange {
	var m protocol.ReservationChange
	switch c.Kind {
	case cloud.ChangePermit:
		m = protocol.PermitChange(lotID, c.Seq, c.Op, protocol.Permit{ID: c.ReservationID, Plate: c.Plate,
			ValidFrom: c.StartsAt, ValidUntil: c.EndsAt})
	case cloud.ChangeReset:
		m = protocol.PresenceResetChange(lotID, c.Seq, protocol.PresenceReset{ID: c.ReservationID, Plate: c.Plate,
			IssuedAt: c.StartsAt})
	case cloud.ChangeGateOpen:
		m = protocol.GateOpenChange(lotID, c.Seq, protocol.GateOpen{ID: c.ReservationID, GateID: c.Plate,
			Reason: string(c.Status), IssuedAt: c.StartsAt, NotAfter: c.EndsAt})
	default:
		m = reservationChange(c, lotID)
	}
	m.Sign(key)
	return m
}

func reservationChange(c *cloud.Change, lotID string) protocol.ReservationChange {
	return protocol.ReservationChange{
		V:     protocol.Version,
		LotID: lotID,
		Seq:   c.Seq,
		Op:    c.Op,
		Reservation: protocol.Reservation{
			ID:       c.ReservationID,
			Plate:    c.Plate,
			StartsAt: c.StartsAt.UTC(),
			EndsAt:   c.EndsAt.UTC(),
			Status:   c.Status,
		},
	}
}
