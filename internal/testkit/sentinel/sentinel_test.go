package sentinel_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parkgate/parkgate/internal/testkit/sentinel"
)

// TestKillMasterPromotesReplica: after the master is killed the sentinels
// name the replica, and a go-redis failover client on URL writes to it.
func TestKillMasterPromotesReplica(t *testing.T) {
	g := sentinel.Start(t, sentinel.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opt, err := redis.ParseFailoverURL(g.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewFailoverClient(opt)
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old, err := g.KillMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	now, err := g.WaitMaster(ctx, old)
	if err != nil {
		t.Fatalf("%v\n%s", err, g.Logs())
	}
	t.Logf("%s promoted %v after %s was killed", now, time.Since(killed).Round(time.Millisecond), old)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := rdb.Set(ctx, "k", "after", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failover client never wrote to the new master: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := redis.NewClient(&redis.Options{Addr: now}).Get(ctx, "k").Val(); v != "after" {
		t.Fatalf("new master %s has k = %q, want the write made after the failover", now, v)
	}
}
