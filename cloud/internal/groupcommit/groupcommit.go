// Package groupcommit lets concurrent callers share one database statement
// and its commit. Each caller hands in its request and waits; requests that
// arrive while earlier ones are being written queue up and go together in
// the next write. At low load every request goes alone at once, as if there
// were no group; under load one statement and one WAL flush carry many, and
// the commits per second stop being the ceiling. The payment bus records
// webhooks this way, the store confirms paid holds and writes a
// lot's holds this way, the relay marks what the broker acknowledged this
// way, and the hot-lot guard pipelines its Redis commands this way.
package groupcommit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Group batches requests of type T, each answered with an R. The zero value
// is not usable: set Write.
type Group[T, R any] struct {
	// Write writes one batch and returns one answer per request, in order,
	// or an error that every request of the batch gets.
	Write func(ctx context.Context, batch []T) ([]R, error)
	// MaxBatch bounds the requests of one write (default 256).
	MaxBatch int
	// MaxWriters bounds the writes in flight at once (default 4): more would
	// only queue on the WAL and the pool.
	MaxWriters int
	// Backlog is how many requests must be waiting before another writer
	// is put to work while one is already writing (default 1: any). The
	// busy writer takes what queued meanwhile as its next batch anyway; a
	// second one splits that queue into smaller batches, each paying a
	// write's fixed cost, which is worth it only once the queue holds what
	// one writer's next batch can carry (Backlog = MaxBatch). Meanwhile a
	// slow write holds up to Backlog-1 requests that a second writer
	// would have taken at once.
	Backlog int
	// Timeout bounds one write (default 15s). It is not any caller's
	// context, since the write carries the requests of many callers.
	Timeout time.Duration
	// Linger is how long a writer with nothing left to write waits for the
	// next request before it ends (default 1s). A writer that lives on
	// keeps the stack it grew in Write, until a collection finds it idle
	// and shrinks it: a goroutine started afresh for each batch grew it
	// again every time, through the client libraries' deep read paths, and
	// that copying was near a tenth of the server's CPU over a surge
	// benchmark (runtime.copystack under the Redis pipeline: 8.6% before,
	// 0.8% after).
	Linger time.Duration

	mu      sync.Mutex
	queue   []*request[T, R]
	writers int             // running, busy or idle
	idle    []chan struct{} // the idle writers' wake-ups, the latest last
}

type request[T, R any] struct {
	in    T
	reply chan result[R] // buffered: a writer never waits on a caller
}

type result[R any] struct {
	out R
	err error
}

// Do queues in for the next write and waits for its answer. A caller whose
// ctx ends first returns ctx.Err() and leaves its request in the write: it
// may or may not take effect.
func (g *Group[T, R]) Do(ctx context.Context, in T) (R, error) {
	r := &request[T, R]{in: in, reply: make(chan result[R], 1)}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	maxWriters := g.MaxWriters
	if maxWriters <= 0 {
		maxWriters = 4
	}
	var wake chan struct{}
	spawn := false
	// With a writer busy and the queue short of Backlog, none is put to
	// work: the busy one takes this request next, for it looks at the
	// queue again before it goes idle.
	if busy := g.writers - len(g.idle); busy == 0 || len(g.queue) >= g.Backlog {
		if n := len(g.idle); n > 0 {
			// The writer idle the shortest time: the others may end.
			wake, g.idle = g.idle[n-1], g.idle[:n-1]
		} else if g.writers < maxWriters {
			g.writers++
			spawn = true
		}
	}
	g.mu.Unlock()
	if wake != nil {
		wake <- struct{}{} // buffered, and taken from idle: never blocks
	}
	if spawn {
		go g.drain()
	}
	select {
	case res := <-r.reply:
		return res.out, res.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// Queued reports how many requests wait for a write (not those being
// written): for a test that must know its requests queued before it lets
// a write through.
func (g *Group[T, R]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// drain writes queued requests, a batch at a time, until none are left.
func (g *Group[T, R]) drain() {
	maxBatch, timeout := g.MaxBatch, g.Timeout
	if maxBatch <= 0 {
		maxBatch = 256
	}
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	linger := g.Linger
	if linger <= 0 {
		linger = time.Second
	}
	wake := make(chan struct{}, 1)
	idle := time.NewTimer(linger)
	idle.Stop()
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxBatch)
		if n == 0 {
			g.queue = nil // let a grown backing array go
			g.idle = append(g.idle, wake)
			g.mu.Unlock()
			idle.Reset(linger)
			select {
			case <-wake:
				idle.Stop()
				continue
			case <-idle.C:
			}
			g.mu.Lock()
			if i := slices.Index(g.idle, wake); i >= 0 {
				g.idle = slices.Delete(g.idle, i, i+1)
				g.writers--
				g.mu.Unlock()
				return
			}
			// A caller took this writer from idle as the timer fired: its
			// wake-up is on the way, and its request in the queue.
			g.mu.Unlock()
			<-wake
			continue
		}
		reqs := make([]*request[T, R], n)
		copy(reqs, g.queue)
		g.queue = g.queue[n:]
		g.mu.Unlock()

		batch := make([]T, n)
		for i, r := range reqs {
			batch[i] = r.in
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		outs, err := g.Write(ctx, batch)
		cancel()
		if err == nil && len(outs) != n {
			err = fmt.Errorf("groupcommit: %d answers for %d requests", len(outs), n)
		}
		for i, r := range reqs {
			if err != nil {
				r.reply <- result[R]{err: err}
			} else {
				r.reply <- result[R]{out: outs[i]}
			}
		}
	}
}
