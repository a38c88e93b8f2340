package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/protocol"
)

// setupEdge is setup with the edge endpoints wired.
func setupEdge(t testing.TB) *bundle {
	t.Helper()
	s := pgtest.New(t, 8)
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	api := &httpapi.Server{Booking: svc, DB: s.DB, EdgeTokens: s.DB, EdgeKeys: s.DB, AdminToken: adminToken}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, schema: s, svc: svc}
}

// TestRegisterEdgeKey: POST /v1/edge/lots/{lot_id}/keys with the lot's edge
// token stores the key (201, again 201 for a known key; several per lot);
// without the token 401; a key that is not standard base64 of 32 bytes 400
// invalid_request on public_key.
func TestRegisterEdgeKey(t *testing.T) {
	t.Parallel()
	b := setupEdge(t)
	lot, other := b.createLot(t, []string{"A1"}), b.createLot(t, []string{"A1"})
	tok := b.do(t, "POST", "/v1/lots/"+lot+"/edge-tokens", nil, map[string]string{"Authorization": "Bearer " + adminToken}).json(t)["token"].(string)
	auth := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	path := "/v1/edge/lots/" + lot + "/keys"
	seed := make([]byte, ed25519.SeedSize)
	k1 := protocol.EncodePublicKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	seed[0] = 1
	k2 := protocol.EncodePublicKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))

	for _, tt := range []struct {
		name    string
		key     string
		created bool
	}{{"New", k1, true}, {"Again", k1, false}, {"Second", k2, true}} {
		r := b.do(t, "POST", path, map[string]string{"public_key": tt.key}, auth)
		if r.Status != 201 {
			t.Fatalf("%s: %d %s", tt.name, r.Status, r.Body)
		}
		if m := r.json(t); m["created"] != tt.created || m["public_key"] != tt.key || m["lot_id"] != lot {
			t.Fatalf("%s: %s", tt.name, r.Body)
		}
	}
	keys, err := b.schema.DB.EdgeKeys(context.Background(), lot)
	if err != nil || len(keys) != 2 {
		t.Fatalf("stored keys %v, %v", keys, err)
	}

	t.Run("Unauthorized", func(t *testing.T) {
		for name, hdr := range map[string]map[string]string{
			"NoToken":       nil,
			"AdminToken":    {"Authorization": "Bearer " + adminToken},
			"OtherLotToken": auth, // a token of lot, used on other
		} {
			p := path
			if name == "OtherLotToken" {
				p = "/v1/edge/lots/" + other + "/keys"
			}
			r := b.do(t, "POST", p, map[string]string{"public_key": k1}, hdr)
			if r.Status != 401 || r.code() != "unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		if keys, _ := b.schema.DB.EdgeKeys(context.Background(), other); len(keys) != 0 {
			t.Error("a key was stored for a lot without its token")
		}
	})
	t.Run("BadKey", func(t *testing.T) {
		for name, body := range map[string]any{
			"Missing":   map[string]string{},
			"Empty":     map[string]string{"public_key": ""},
			"NotBase64": map[string]string{"public_key": "not base64!"},
			"URLSafe":   map[string]string{"public_key": strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(make([]byte, 31))) + "-_"},
			"Short":     map[string]string{"public_key": base64.StdEncoding.EncodeToString(make([]byte, 31))},
			"Long":      map[string]string{"public_key": base64.StdEncoding.EncodeToString(make([]byte, 33))},
			"Number":    map[string]any{"public_key": 7},
		} {
			r := b.do(t, "POST", path, body, auth)
			if r.Status != 400 || r.code() != "invalid_request" || r.field() != "public_key" {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		if r := b.do(t, "POST", path, "{", auth); r.Status != 400 || r.code() != "invalid_request" {
			t.Errorf("malformed JSON: %d %s", r.Status, r.Body)
		}
	})
}
