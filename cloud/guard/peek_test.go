package guard_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parkgate/parkgate/cloud/guard"
)

// pipelineCounter counts the pipelines a client sends, and the scripts in
// them and alone.
type pipelineCounter struct{ n, scripts atomic.Int64 }

func (c *pipelineCounter) count(cmds ...redis.Cmder) {
	for _, cmd := range cmds {
		if name := cmd.Name(); name == "eval" || name == "evalsha" {
			c.scripts.Add(1)
		}
	}
}

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.count(cmd); return next(ctx, cmd) }
}
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		c.count(cmds...)
		return next(ctx, cmds)
	}
}

// TestPeek: the stored response and the cached availability, read in one
// round trip (a plain MGET once the lot has a version), are what
// LoadResponse and Availability read; a miss gives the Version that stores;
// an invalidation is seen; a lost version and lost scripts are made again.
func TestPeek(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start, end := at(0, 10), at(0, 12)
	rdb := newClient(t, testRedisURL())
	pipes := &pipelineCounter{}
	rdb.AddHook(pipes)
	ns := "guardtest-" + rand.Text()
	t.Cleanup(func() { deleteNamespace(t, rdb, ns) })
	g := guard.New(rdb, guard.Options{Namespace: ns, OpTimeout: 5 * time.Second})

	p := g.PeekState(ctx, "k1", "lot-1", start, end, true)
	if p.Stored || p.Cached || p.Version == (guard.Version{}) {
		t.Fatalf("empty: %+v; want nothing stored or cached, a version to store with", p)
	}
	g.StoreAvailability(ctx, "lot-1", start, end, p.Version, 0, 50)
	want := guard.StoredResponse{RequestHash: []byte{1, 2}, Status: 201, Body: []byte(`{"id":"r-1"}`)}
	g.SaveResponse(ctx, "k1", want)

	before, scripts := pipes.n.Load(), pipes.scripts.Load()
	p = g.PeekState(ctx, "k1", "lot-1", start, end, true)
	if n := pipes.n.Load() - before; n != 1 {
		t.Errorf("a lone Peek sent %d pipelines, want 1", n)
	}
	if n := pipes.scripts.Load() - scripts; n != 0 {
		t.Errorf("a Peek of a lot with its version ran %d scripts, want none (MGET)", n)
	}
	if !p.Stored || p.Response.Status != 201 || !bytes.Equal(p.Response.Body, want.Body) || !bytes.Equal(p.Response.RequestHash, want.RequestHash) {
		t.Errorf("stored: %+v", p)
	}
	if !p.Cached || p.Available != 0 || p.Total != 50 {
		t.Errorf("cached: %+v; want 0 of 50", p)
	}
	if q := g.PeekState(ctx, "k2", "lot-1", start, end, true); q.Stored || !q.Cached {
		t.Errorf("another key: %+v; want not stored, cached", q)
	}

	if q := g.PeekState(ctx, "k1", "lot-2", start, end, false); !q.Stored || q.Cached || q.Version != (guard.Version{}) {
		t.Errorf("without availability: %+v; want the response alone", q)
	}
	if n, err := rdb.Exists(ctx, ns+":avail:{lot-2}:ver").Result(); err != nil || n != 0 {
		t.Errorf("a Peek without availability made the lot's version key (%d, %v)", n, err)
	}

	g.InvalidateLot(ctx, "lot-1")
	if p = g.PeekState(ctx, "k1", "lot-1", start, end, true); p.Cached || !p.Stored {
		t.Fatalf("after InvalidateLot: %+v; want stored, not cached", p)
	}

	g.StoreAvailability(ctx, "lot-1", start, end, p.Version, 3, 50)
	if p = g.PeekState(ctx, "k1", "lot-1", start, end, true); !p.Cached || p.Available != 3 || !p.Stored {
		t.Fatalf("refilled: %+v; want 3 of 50 and the response", p)
	}

	// Redis loses the lot's version (a restart, an eviction) and its
	// scripts: the script makes a version again, which the old entry
	// does not carry.
	if err := rdb.Del(ctx, ns+":avail:{lot-1}:ver").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if p = g.PeekState(ctx, "k1", "lot-1", start, end, true); p.Cached || !p.Stored || p.Version == (guard.Version{}) {
		t.Fatalf("version lost: %+v; want a miss with a version, and the response", p)
	}
	g.StoreAvailability(ctx, "lot-1", start, end, p.Version, 2, 50)
	if p = g.PeekState(ctx, "k1", "lot-1", start, end, true); !p.Cached || p.Available != 2 {
		t.Fatalf("after the version was made again: %+v; want 2 of 50", p)
	}
}
