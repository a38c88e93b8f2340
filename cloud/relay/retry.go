package relay

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// permanent reports whether running the same statements again cannot
// succeed: the database understood the request and refused it for what it
// says (bad data, an unknown lot, ...). Anything else — a deadlock (40P01),
// a serialization failure (40001), a lost connection, a database starting
// up or shutting down, a full pool — may pass on another try.
func permanent(err error) bool {
	code := sqlState(err)
	if code == "" {
		return false // no answer from the server: network, pool, timeout
	}
	switch code[:2] {
	case "08", // connection exception
		"40", // transaction rollback: deadlock, serialization failure
		"53", // insufficient resources: too many connections, out of memory
		"57", // operator intervention: shutdown, query cancelled
		"55": // object not in prerequisite state: lock not available
		return false
	}
	return true
}

// backoff is capped exponential backoff with full jitter, so replicas that
// collided (two transactions that deadlocked) do not collide again in step.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 20)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx ends, and reports whether it waited the whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
