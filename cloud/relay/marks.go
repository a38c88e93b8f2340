package relay

import (
	"context"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// The marks of concurrent drains go to the database together, as a group
// commit does: a drain that finds no mark in flight sends its own with
// whatever queued meanwhile; one that finds one in flight queues and is
// answered by the next. On a calm day a drain is one change, and its mark
// was one round trip and one commit of its own: with 16 drains at once,
// the marks were most of the statements the relay sent.

// markGroup queues marks while one group is in flight.
type markGroup struct {
	mu     sync.Mutex
	queue  []*markCall
	flying bool // a leader is sending, or about to
}

type markCall struct {
	mark cloud.Mark
	// Set before wake is signalled with done true; wake with done false
	// makes the call the next leader.
	done bool
	res  cloud.Marked
	err  error
	wake chan struct{}
}

// markTimeout bounds one group's round trip. Marks outlive the relay's
// context: a change the broker acknowledged should not be sent again for
// want of a mark.
const markTimeout = 5 * time.Second

// mark stamps m's changes published, grouped with the marks of other drains
// made meanwhile, and returns what it did.
func (r *Relay) mark(m cloud.Mark) (cloud.Marked, error) {
	c := &markCall{mark: m, wake: make(chan struct{}, 1)}
	g := &r.marks
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.flying
	g.flying = true
	g.mu.Unlock()
	if !lead {
		<-c.wake
		if c.done {
			return c.res, c.err
		}
		// The last leader handed the next group to this call.
	}

	g.mu.Lock()
	group := g.queue
	g.queue = nil
	g.mu.Unlock()
	r.sendMarks(group)

	// A leader sends one group, then hands the queue on, so that under
	// steady load no drain waits for others' marks after its own.
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.mu.Unlock()
		next.wake <- struct{}{}
	} else {
		g.flying = false
		g.mu.Unlock()
	}
	return c.res, c.err
}

// sendMarks sends one group and answers each of its calls.
func (r *Relay) sendMarks(group []*markCall) {
	marks := make([]cloud.Mark, len(group))
	for i, c := range group {
		marks[i] = c.mark
	}
	ctx, cancel := context.WithTimeout(context.Background(), markTimeout)
	res, err := r.outbox.MarkPublished(ctx, r.opts.Owner, r.opts.LeaseTTL, marks)
	cancel()
	relayMarkGroup.Observe(float64(len(group)))
	for i, c := range group {
		if err == nil {
			c.res = res[i]
		}
		c.err = err
		c.done = true
		c.wake <- struct{}{}
	}
}
