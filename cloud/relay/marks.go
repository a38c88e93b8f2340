package relay

import (
	"context"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// markTimeout bounds one group of marks. Marks outlive the relay's context:
// a change the broker acknowledged should not be sent again for want of a
// mark.
const markTimeout = 5 * time.Second

// newMarks returns the group the drains' marks go through: marks made while
// one group is in flight go together in the next, one round trip and one
// commit for all. On a calm day a drain is one change, and its mark was a
// round trip and a commit of its own: with 16 drains at once, most of the
// statements the relay sent. One writer: a second would only wait on the
// first's commit.
func newMarks(outbox cloud.Outbox, opts Options) *groupcommit.Group[cloud.Mark, cloud.Marked] {
	return &groupcommit.Group[cloud.Mark, cloud.Marked]{
		MaxWriters: 1,
		Timeout:    markTimeout,
		Write: func(ctx context.Context, marks []cloud.Mark) ([]cloud.Marked, error) {
			relayMarkGroup.Observe(float64(len(marks)))
			return outbox.MarkPublished(ctx, opts.Owner, opts.LeaseTTL, marks)
		},
	}
}

// mark stamps m's changes published, with the marks of other drains made
// meanwhile, and returns what it did.
func (r *Relay) mark(m cloud.Mark) (cloud.Marked, error) {
	return r.marks.Do(context.Background(), m)
}
