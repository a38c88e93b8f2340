package httpapi_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

// TestAccessTokenReplayFromRedis: with the Redis guard, a hold that is final
// at once has its 201 stored by the batch's writer, in the pipeline that
// invalidates the lot; the replay Redis answers must be the first answer
// byte for byte, access token included (the batch once stored a body built
// without it).
func TestAccessTokenReplayFromRedis(t *testing.T) {
	t.Parallel()
	b := setupGuarded(t, guard.Options{})
	lot := b.createLot(t, 2)
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	first := b.do(t, "POST", "/v1/reservations", hold(lot, "TOK2", start, start.Add(time.Hour)), key("tok-redis"))
	if first.Status != 201 || !strings.Contains(string(first.Body), `"access_token":"pgat_`) {
		t.Fatalf("hold: %d %s", first.Status, first.Body)
	}
	again := b.do(t, "POST", "/v1/reservations", hold(lot, "TOK2", start, start.Add(time.Hour)), key("tok-redis"))
	if again.Status != 201 || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("replay: %d %s\nfirst: %s", again.Status, again.Body, first.Body)
	}
}
