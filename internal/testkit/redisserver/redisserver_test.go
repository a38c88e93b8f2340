package redisserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parkgate/parkgate/internal/testkit/redisserver"
)

// TestRestart: the server answers on the same URL after a restart, and a
// client that was connected before reconnects by itself.
func TestRestart(t *testing.T) {
	s := redisserver.Start(t)
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if !s.Running() {
		t.Fatal("not running after restart")
	}
	// Empty after a restart: nothing is persisted.
	var got error
	for range 3 { // the first command may meet the old, closed connection
		if got = c.Get(ctx, "k").Err(); got == redis.Nil {
			break
		}
	}
	if got != redis.Nil {
		t.Fatalf("get after restart: %v, want redis.Nil", got)
	}
}
