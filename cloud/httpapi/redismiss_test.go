package httpapi_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/redis/go-redis/v9"
)

// TestRetryMissingRedis: the copy of an answer in Redis is only a fast
// path. A retry whose key Redis does not have (lost, evicted, or not yet
// written when the retry came) takes Postgres' key record and gets the
// same status and bytes, marked replayed, with payments off (the key stored
// done by the hold itself) and on (the body stored by FinishHold).
func TestRetryMissingRedis(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, bd *bundle, rdb *redis.Client, ns string) {
		lot := bd.createLot(t, 1)
		start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
		body := hold(lot, "RM1", start, start.Add(time.Hour))
		first := bd.do(t, "POST", "/v1/reservations", body, key("rm-1"))
		if first.Status != 201 {
			t.Fatalf("hold: %d %s", first.Status, first.Body)
		}
		full := bd.do(t, "POST", "/v1/reservations", hold(lot, "RM2", start, start.Add(time.Hour)), key("rm-2"))
		if full.Status != 409 {
			t.Fatalf("second hold of the one spot: %d %s", full.Status, full.Body)
		}
		for _, k := range []string{"rm-1", "rm-2"} {
			// The copy may be written after the answer: wait for it, so
			// that deleting it is what makes the retry miss.
			deadline := time.Now().Add(5 * time.Second)
			for {
				n, err := rdb.Del(context.Background(), ns+":idem:"+k).Result()
				if err != nil {
					t.Fatal(err)
				}
				if n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the answer to %s never reached Redis", k)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		again := bd.do(t, "POST", "/v1/reservations", body, key("rm-1"))
		if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
			t.Errorf("retry of the hold without Redis' copy: %d %s\nfirst: %s", again.Status, again.Body, first.Body)
		}
		again = bd.do(t, "POST", "/v1/reservations", hold(lot, "RM2", start, start.Add(time.Hour)), key("rm-2"))
		if again.Status != 409 || !bytes.Equal(again.Body, full.Body) {
			t.Errorf("retry of the 409 without Redis' copy: %d %s", again.Status, again.Body)
		}
	}
	t.Run("PaymentsOff", func(t *testing.T) {
		t.Parallel()
		bd := setupGuarded(t, guard.Options{})
		_, rdb, _ := testGuard(t, "redismiss")
		check(t, bd, rdb, bd.ns)
	})
	t.Run("PaymentsOn", func(t *testing.T) {
		t.Parallel()
		g, rdb, ns := testGuard(t, "redismiss")
		pb := setupPaymentsGuarded(t, 10*time.Minute, g)
		check(t, pb.bundle, rdb, ns)
	})
}
