package guard_test

import (
	"context"
	"testing"

	"github.com/parkgate/parkgate/cloud/guard"
)

// TestNewUniversalClient: a plain URL is the single-server client; a URL
// naming a Sentinel master is refused when it is malformed, so a typo in
// REDIS_URL stops parkcloud at start rather than running without a guard.
// That the failover client follows a promoted master is the drill's
// (deploy/failover TestRedisSentinelFailover).
func TestNewUniversalClient(t *testing.T) {
	t.Parallel()
	rdb, err := guard.NewUniversalClient(testRedisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("plain URL: %v", err)
	}
	for _, tt := range []struct{ name, url string }{
		{"EmptyMasterName", "redis://127.0.0.1:26379/0?master_name="},
		{"UnknownParameter", "redis://127.0.0.1:26379/0?master_name=m&bogus=1"},
		{"BadAddr", "redis://127.0.0.1:26379/0?master_name=m&addr=nohost"},
		{"NotRedis", "http://127.0.0.1:26379/0?master_name=m"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := guard.NewUniversalClient(tt.url); err == nil {
				c.Close()
				t.Fatalf("NewUniversalClient(%q) accepted it", tt.url)
			}
		})
	}
	c, err := guard.NewUniversalClient("redis://127.0.0.1:26379/0?master_name=m&addr=127.0.0.1:26380")
	if err != nil {
		t.Fatalf("a well-formed sentinel URL: %v", err)
	}
	c.Close()
}
