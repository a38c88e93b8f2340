package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

func TestChanges(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	lot, empty := f.lot(), f.lot()
	// Real changes through the database's change function (seqs 1-3),
	// then some more (4-8).
	res := f.reservation(lot, protocol.StatusPending, "AB123C", 0)
	for _, step := range [][2]string{{"{PENDING}", "CONFIRMED"}, {"{CONFIRMED}", "CHECKED_IN"}, {"{CHECKED_IN}", "COMPLETED"}} {
		f.exec(`SELECT * FROM parkgate_change($1, $2::text[], $3)`, res, step[0], step[1])
	}
	f.addChanges(lot, 5)

	t.Run("Paging", func(t *testing.T) {
		var all []protocol.ReservationChange
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			page, err := f.store.Changes(ctx, lot, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if page.LotID != lot || page.LastSeq != 8 {
				t.Fatalf("page lot %s last %d", page.LotID, page.LastSeq)
			}
			all = append(all, page.Changes...)
			if !page.More {
				break
			}
			after = page.Changes[len(page.Changes)-1].Seq
		}
		if len(all) != 8 {
			t.Fatalf("%d changes, want 8", len(all))
		}
		for i, c := range all {
			if c.Seq != int64(i+1) {
				t.Errorf("change %d has seq %d", i, c.Seq)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("seq %d: %v", c.Seq, err)
			}
			if err := c.Verify([]ed25519.PublicKey{f.pub}); err != nil {
				t.Errorf("seq %d: %v", c.Seq, err)
			}
		}
		if c := all[0]; c.Op != protocol.OpUpsert || c.Reservation.ID != res ||
			c.Reservation.Status != protocol.StatusConfirmed || c.Reservation.Plate != "AB123C" ||
			c.Reservation.StartsAt.Location() != time.UTC {
			t.Errorf("seq 1 = %+v", c)
		}
		if c := all[2]; c.Op != protocol.OpDelete || c.Reservation.Status != protocol.StatusCompleted {
			t.Errorf("seq 3 = %+v", c)
		}
	})

	t.Run("SignatureCoversContent", func(t *testing.T) {
		page, err := f.store.Changes(ctx, lot, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		c := page.Changes[0]
		c.Reservation.EndsAt = c.Reservation.EndsAt.Add(24 * time.Hour)
		if err := c.Verify([]ed25519.PublicKey{f.pub}); err == nil {
			t.Error("a stretched window still verifies")
		}
	})

	t.Run("CaughtUp", func(t *testing.T) {
		page, err := f.store.Changes(ctx, lot, 8, 0)
		if err != nil || len(page.Changes) != 0 || page.More || page.LastSeq != 8 {
			t.Errorf("got %+v, %v", page, err)
		}
		page, err = f.store.Changes(ctx, empty, 0, 0)
		if err != nil || len(page.Changes) != 0 || page.Changes == nil || page.LastSeq != 0 {
			t.Errorf("empty lot: %+v, %v", page, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tt := range []struct {
			name, lot string
			after     int64
			code      string
		}{
			{"UnknownLot", uuid.NewString(), 0, cloud.ENotFound},
			{"NotUUID", "lot-1", 0, cloud.ENotFound},
			{"NegativeAfter", lot, -1, cloud.EInvalid},
		} {
			if _, err := f.store.Changes(ctx, tt.lot, tt.after, 10); cloud.ErrorCode(err) != tt.code {
				t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
			}
		}
	})

	t.Run("UppercaseLotID", func(t *testing.T) {
		page, err := f.store.Changes(ctx, strings.ToUpper(lot), 0, 1)
		if err != nil || page.LotID != lot || page.Changes[0].LotID != lot {
			t.Errorf("got %+v, %v", page, err)
		}
	})
}

func TestEdgeTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	lot, other := f.lot(), f.lot()

	first, err := f.store.CreateEdgeToken(ctx, lot)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.store.CreateEdgeToken(ctx, lot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, EdgeTokenPrefix) || first == second {
		t.Fatalf("tokens %q %q", first, second)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(first, EdgeTokenPrefix)); err != nil || len(raw) != 32 {
		t.Fatalf("token body: %d bytes, %v", len(raw), err)
	}
	// Only the SHA-256 is kept.
	if n := f.queryInt(`SELECT count(*) FROM edge_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, first); n != 1 {
		t.Error("token not stored as its SHA-256")
	}

	verify := func(lot, token string) bool {
		t.Helper()
		ok, err := f.store.VerifyEdgeToken(ctx, lot, token)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, tt := range []struct {
		name, lot, token string
		want             bool
	}{
		{"First", lot, first, true},
		{"SecondAlongside", lot, second, true},
		{"WrongLot", other, first, false},
		{"Garbage", lot, "pgedge_nope", false},
		{"Empty", lot, "", false},
		{"AlteredByte", lot, first[:len(first)-1] + string(first[len(first)-1]^1), false},
		{"NotUUIDLot", "lot-1", first, false},
	} {
		if got := verify(tt.lot, tt.token); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}

	// Rotation: the old token is revoked once the new one is in place.
	if err := f.store.RevokeEdgeToken(ctx, lot, first); err != nil {
		t.Fatal(err)
	}
	if verify(lot, first) || !verify(lot, second) {
		t.Error("after revoking the first: first still valid or second not")
	}
	if err := f.store.RevokeEdgeToken(ctx, lot, first); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("revoke twice: %v", err)
	}
	if err := f.store.RevokeEdgeToken(ctx, other, second); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("revoke through another lot: %v", err)
	}
	if !verify(lot, second) {
		t.Error("another lot revoked the token")
	}

	if _, err := f.store.CreateEdgeToken(ctx, uuid.NewString()); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("unknown lot: %v", err)
	}
	if _, err := f.store.CreateEdgeToken(ctx, "lot-1"); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("malformed lot: %v", err)
	}
}
