package relay

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// TestFeed: the catch-up read hands out the store's pages with every change
// signed, so an edge trusts it as it trusts the published messages.
func TestFeed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	feed := NewFeed(f.db, f.key)
	lot, empty := f.lot(), f.lot()
	res := f.reservation(lot, protocol.StatusPending, "AB123C", 0)
	for _, step := range [][2]string{{"{PENDING}", "CONFIRMED"}, {"{CONFIRMED}", "CHECKED_IN"}, {"{CHECKED_IN}", "COMPLETED"}} {
		f.exec(`SELECT * FROM parkgate_change($1, $2::text[], $3)`, res, step[0], step[1])
	}
	f.addChanges(lot, 5)

	t.Run("Signed", func(t *testing.T) {
		page, err := feed.Changes(ctx, strings.ToUpper(lot), 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if page.LotID != lot || page.LastSeq != 8 || !page.More || len(page.Changes) != 3 {
			t.Fatalf("page %+v", page)
		}
		for i, c := range page.Changes {
			if c.Seq != int64(i+1) || c.LotID != lot || c.V != protocol.Version {
				t.Errorf("change %d: %+v", i, c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("seq %d: %v", c.Seq, err)
			}
			if err := c.Verify([]ed25519.PublicKey{f.pub}); err != nil {
				t.Errorf("seq %d: %v", c.Seq, err)
			}
		}
		if c := page.Changes[0]; c.Op != protocol.OpUpsert || c.Reservation.ID != res ||
			c.Reservation.Status != protocol.StatusConfirmed || c.Reservation.Plate != "AB123C" ||
			c.Reservation.StartsAt.Location() != time.UTC || c.Reservation.EndsAt.Location() != time.UTC {
			t.Errorf("seq 1 = %+v", c)
		}
		if c := page.Changes[2]; c.Op != protocol.OpDelete || c.Reservation.Status != protocol.StatusCompleted {
			t.Errorf("seq 3 = %+v", c)
		}
	})

	t.Run("SignatureCoversContent", func(t *testing.T) {
		page, err := feed.Changes(ctx, lot, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		c := page.Changes[0]
		c.Reservation.EndsAt = c.Reservation.EndsAt.Add(24 * time.Hour)
		if err := c.Verify([]ed25519.PublicKey{f.pub}); err == nil {
			t.Error("a stretched window still verifies")
		}
	})

	t.Run("Empty", func(t *testing.T) {
		page, err := feed.Changes(ctx, empty, 0, 0)
		if err != nil || page.Changes == nil || len(page.Changes) != 0 || page.LastSeq != 0 || page.More {
			t.Errorf("empty lot: %+v, %v", page, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		if _, err := feed.Changes(ctx, uuid.NewString(), 0, 0); cloud.ErrorCode(err) != cloud.ENotFound {
			t.Errorf("unknown lot: %v", err)
		}
		if _, err := feed.Changes(ctx, lot, -1, 0); cloud.ErrorCode(err) != cloud.EInvalid {
			t.Errorf("negative after: %v", err)
		}
	})
}
