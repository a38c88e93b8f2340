package pgbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/bus"
)

// Group commit for publishes. Every webhook must be committed before Stripe
// is answered, and under a flood those commits, one per event, were what
// Postgres spent its time on (each waits its turn for the WAL). Publishes
// that arrive while others are being written queue up and go together in
// the next statement: at low load each goes alone at once, as before; at
// high load one INSERT and one commit carry many events.
const (
	// maxFlushers bounds the statements in flight at once; more would only
	// queue on the WAL and the pool.
	maxFlushers = 4
	// maxBatch bounds the events of one statement.
	maxBatch = 256
	// flushTimeout bounds one statement; it is not any caller's context,
	// since the statement carries the events of many callers.
	flushTimeout = 15 * time.Second
)

type publishGroup struct {
	pool *pgxpool.Pool

	mu       sync.Mutex
	queue    []*publishReq
	flushers int
}

type publishReq struct {
	m     bus.Message
	reply chan publishResult // buffered: a flusher never waits on a caller
}

type publishResult struct {
	inserted bool
	err      error
}

// publish queues m for the next statement and waits for its outcome. A
// caller that gives up (ctx done) leaves its event in the statement: it may
// or may not be recorded, as the Publisher contract allows on error.
func (g *publishGroup) publish(ctx context.Context, m bus.Message) (inserted bool, err error) {
	r := &publishReq{m: m, reply: make(chan publishResult, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	spawn := g.flushers < maxFlushers
	if spawn {
		g.flushers++
	}
	g.mu.Unlock()
	if spawn {
		go g.flush()
	}
	select {
	case res := <-r.reply:
		return res.inserted, res.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// flush writes queued publishes, a batch at a time, until the queue is
// empty.
func (g *publishGroup) flush() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxBatch)
		if n == 0 {
			g.flushers--
			g.queue = nil // let a grown backing array go
			g.mu.Unlock()
			return
		}
		batch := make([]*publishReq, n)
		copy(batch, g.queue)
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.write(batch)
	}
}

// write inserts one batch and answers each of its callers. The same id
// twice in one batch (Stripe delivering an event twice at once) is
// inserted once; the first caller hears "new", the others "duplicate".
//
// The rows go in ordered by id. Two statements inserting the same ids in
// different orders (an event delivered twice at once, into two batches)
// would each wait for the other's uncommitted row: a deadlock, which the
// concurrent-publish test found. In one order, one of them simply waits.
// Arrival order (seq) within a batch is then id order: those events
// arrived together, so neither came first.
func (g *publishGroup) write(batch []*publishReq) {
	slices.SortStableFunc(batch, func(a, b *publishReq) int { return strings.Compare(a.m.ID, b.m.ID) })
	ids := make([]string, len(batch))
	keys := make([]string, len(batch))
	types := make([]string, len(batch))
	payloads := make([][]byte, len(batch))
	created := make([]pgtype.Timestamptz, len(batch)) // invalid: the database's now()
	for i, r := range batch {
		ids[i], keys[i], types[i], payloads[i] = r.m.ID, r.m.Key, r.m.Type, r.m.Payload
		if payloads[i] == nil {
			payloads[i] = []byte{} // nil would be NULL
		}
		if !r.m.CreatedAt.IsZero() {
			created[i] = pgtype.Timestamptz{Time: r.m.CreatedAt, Valid: true}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	fresh := make(map[string]bool, len(batch))
	rows, err := g.pool.Query(ctx, publishSQL, ids, keys, types, payloads, created)
	if err == nil {
		for rows.Next() {
			var id string
			if err = rows.Scan(&id); err != nil {
				break
			}
			fresh[id] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	var pe *pgconn.PgError
	if len(batch) > 1 && errors.As(err, &pe) {
		// Postgres refused the statement, not the connection: one event
		// may be at fault (a NUL in a text field, say). Alone, the others
		// go in and only it fails, rather than every webhook that shared
		// its batch being told to come back, and sharing it again.
		for _, r := range batch {
			g.write([]*publishReq{r})
		}
		return
	}
	for _, r := range batch {
		if err != nil {
			r.reply <- publishResult{err: fmt.Errorf("insert %d events: %w", len(batch), err)}
			continue
		}
		r.reply <- publishResult{inserted: fresh[r.m.ID]}
		delete(fresh, r.m.ID) // a second copy in this batch is a duplicate
	}
}
