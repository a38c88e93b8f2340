package rediskeys_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/rediskeys"
	"github.com/redis/go-redis/v9"
)

// TestDrop: a namespace's keys go, the guard's "rate:" ones among them, more
// than one batch of them; another namespace's stay; an empty namespace is
// refused rather than taken for every key.
func TestDrop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at 127.0.0.1:6379: %v", err)
	}
	mine, theirs := "droptest-"+rand.Text(), "droptest-"+rand.Text()
	t.Cleanup(func() { _, _ = rediskeys.Drop(ctx, rdb, theirs) })
	pipe := rdb.Pipeline()
	for i := range 2500 {
		pipe.Set(ctx, fmt.Sprintf("%s:idem:%d", mine, i), "x", time.Hour)
	}
	pipe.Set(ctx, "rate:"+mine+":lot:a", "1", time.Hour)
	pipe.Set(ctx, theirs+":idem:1", "x", time.Hour)
	pipe.Set(ctx, "rate:"+theirs+":lot:a", "1", time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := rediskeys.Drop(ctx, rdb, mine)
	if err != nil || n != 2501 {
		t.Fatalf("Drop = %d, %v; want 2501 keys", n, err)
	}
	if left, _ := rdb.Exists(ctx, mine+":idem:0", mine+":idem:2499", "rate:"+mine+":lot:a").Result(); left != 0 {
		t.Errorf("%d of the namespace's keys left", left)
	}
	if kept, _ := rdb.Exists(ctx, theirs+":idem:1", "rate:"+theirs+":lot:a").Result(); kept != 2 {
		t.Errorf("another namespace kept %d of its 2 keys", kept)
	}
	if _, err := rediskeys.Drop(ctx, rdb, ""); err == nil {
		t.Error("Drop of an empty namespace was not refused")
	}
}
