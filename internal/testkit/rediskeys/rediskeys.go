// Package rediskeys removes a test's or a benchmark run's keys from a Redis
// it shares with others: the keys of its namespace, and no one else's.
// Without it a run's keys live as long as their TTLs (a stored answer, a
// day), and a session of runs filled a shared Redis with 713,000 keys that
// slowed every later scan of it.
package rediskeys

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Drop deletes every key whose name contains ns: the guard's keys start with
// its namespace, and its rate-limit keys carry it after "rate:". It walks
// the keys with SCAN, so a Redis holding many is never blocked, and unlinks
// them a thousand at a time. It returns how many it deleted.
func Drop(ctx context.Context, rdb redis.UniversalClient, ns string) (int, error) {
	if ns == "" {
		return 0, fmt.Errorf("rediskeys: an empty namespace would match every key")
	}
	iter := rdb.Scan(ctx, 0, "*"+ns+"*", 10_000).Iterator()
	var batch []string
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("rediskeys: unlink %s: %w", ns, err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, fmt.Errorf("rediskeys: scan %s: %w", ns, err)
	}
	return n, flush()
}
