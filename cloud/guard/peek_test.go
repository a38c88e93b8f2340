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

// pipelineCounter counts the pipelines a client sends.
type pipelineCounter struct{ n atomic.Int64 }

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// TestPeek: the stored response and the cached availability, read in one
// round trip, are what LoadResponse and Availability read; a miss gives
// the Version that stores; an invalidation is seen; scripts flushed from
// Redis are loaded again.
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

	p := g.Peek(ctx, "k1", "lot-1", start, end, true)
	if p.Stored || p.Cached || p.Version == (guard.Version{}) {
		t.Fatalf("empty: %+v; want nothing stored or cached, a version to store with", p)
	}
	g.StoreAvailability(ctx, "lot-1", start, end, p.Version, 0, 50)
	want := guard.StoredResponse{RequestHash: []byte{1, 2}, Status: 201, Body: []byte(`{"id":"r-1"}`)}
	g.SaveResponse(ctx, "k1", want)

	before := pipes.n.Load()
	p = g.Peek(ctx, "k1", "lot-1", start, end, true)
	if n := pipes.n.Load() - before; n != 1 {
		t.Errorf("a lone Peek sent %d pipelines, want 1", n)
	}
	if !p.Stored || p.Response.Status != 201 || !bytes.Equal(p.Response.Body, want.Body) || !bytes.Equal(p.Response.RequestHash, want.RequestHash) {
		t.Errorf("stored: %+v", p)
	}
	if !p.Cached || p.Available != 0 || p.Total != 50 {
		t.Errorf("cached: %+v; want 0 of 50", p)
	}
	if q := g.Peek(ctx, "k2", "lot-1", start, end, true); q.Stored || !q.Cached {
		t.Errorf("another key: %+v; want not stored, cached", q)
	}

	if q := g.Peek(ctx, "k1", "lot-2", start, end, false); !q.Stored || q.Cached || q.Version != (guard.Version{}) {
		t.Errorf("without availability: %+v; want the response alone", q)
	}
	if n, err := rdb.Exists(ctx, ns+":avail:{lot-2}:ver").Result(); err != nil || n != 0 {
		t.Errorf("a Peek without availability made the lot's version key (%d, %v)", n, err)
	}

	g.InvalidateLot(ctx, "lot-1")
	if p = g.Peek(ctx, "k1", "lot-1", start, end, true); p.Cached || !p.Stored {
		t.Fatalf("after InvalidateLot: %+v; want stored, not cached", p)
	}

	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	g.StoreAvailability(ctx, "lot-1", start, end, p.Version, 3, 50)
	if p = g.Peek(ctx, "k1", "lot-1", start, end, true); !p.Cached || p.Available != 3 || !p.Stored {
		t.Fatalf("after SCRIPT FLUSH: %+v; want 3 of 50 and the response", p)
	}
}
