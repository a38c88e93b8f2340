package httpapi_test

import (
	"crypto/ed25519"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/cloud/relay"
	"github.com/parkgate/parkgate/protocol"
)

// TestIDSpellings is DESIGN's "ids are UUIDs matched case-insensitively:
// every spelling of a lot id gets the same, current answer", walked over the
// calls that broke it: the edge token's and the key registration's answers
// echoed the path's spelling (upper case) as lot_id, and a urn:uuid: spelling
// (which uuid.Parse takes and Postgres does not) reached the database raw and
// answered 500 on the edge token, the edges status and the reservation.
func TestIDSpellings(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 8)
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	_, signer, _ := ed25519.GenerateKey(nil)
	api := &httpapi.Server{Booking: svc, DB: s.DB, EdgeTokens: s.DB, EdgeKeys: s.DB, Edges: s.DB,
		Feed: relay.NewFeed(s.DB, signer), AdminToken: adminToken}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	b := &bundle{srv: srv, schema: s, svc: svc}

	lot := b.createLot(t, []string{"A1"})
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	r := b.do(t, "POST", "/v1/reservations", hold(lot, "AB123", start, start.Add(time.Hour)), key("spellings"))
	if r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}
	res := r.json(t)["id"].(string)
	key := protocol.EncodePublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey))
	spell := func(id string) []string {
		return []string{id, strings.ToUpper(id), "{" + id + "}", "urn:uuid:" + strings.ToUpper(id), strings.ReplaceAll(id, "-", "")}
	}
	for i, sp := range spell(lot) {
		t.Run("Lot"+[]string{"Canonical", "Upper", "Braces", "URN", "NoHyphens"}[i], func(t *testing.T) {
			r := b.do(t, "POST", "/v1/lots/"+sp+"/edge-tokens", nil, adminHdr)
			m := r.json(t)
			if r.Status != 201 || m["lot_id"] != lot {
				t.Fatalf("edge-tokens: %d %s, want 201 with lot_id %s", r.Status, r.Body, lot)
			}
			auth := map[string]string{"Authorization": "Bearer " + m["token"].(string)}
			if r := b.do(t, "POST", "/v1/edge/lots/"+sp+"/keys", map[string]string{"public_key": key}, auth); r.Status != 201 || r.json(t)["lot_id"] != lot {
				t.Fatalf("keys: %d %s, want 201 with lot_id %s", r.Status, r.Body, lot)
			}
			if r := b.do(t, "GET", "/v1/edge/lots/"+sp+"/changes?after=0", nil, auth); r.Status != 200 || r.json(t)["lot_id"] != lot {
				t.Fatalf("changes: %d %s, want 200 with lot_id %s", r.Status, r.Body, lot)
			}
			if r := b.do(t, "GET", "/v1/lots/"+sp+"/edges", nil, adminHdr); r.Status != 200 {
				t.Fatalf("edges: %d %s", r.Status, r.Body)
			}
			if r := b.do(t, "GET", "/v1/lots/"+sp, nil, nil); r.Status != 200 || r.json(t)["id"] != lot {
				t.Fatalf("lot: %d %s", r.Status, r.Body)
			}
		})
	}
	for i, sp := range spell(res) {
		t.Run("Reservation"+[]string{"Canonical", "Upper", "Braces", "URN", "NoHyphens"}[i], func(t *testing.T) {
			if r := b.do(t, "GET", "/v1/reservations/"+sp, nil, nil); r.Status != 200 || r.json(t)["id"] != res {
				t.Fatalf("reservation: %d %s, want 200 with id %s", r.Status, r.Body, res)
			}
		})
	}
}
