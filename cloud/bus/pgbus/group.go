package pgbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// Every webhook must be committed before Stripe is answered, and under a
// flood those commits, one per event, were what Postgres spent its time on
// (each waits its turn for the WAL). Publishes share statements and commits
// through a group (package groupcommit): at low load each goes alone at
// once; at high load one INSERT carries many.
func newPublishGroup(pool *pgxpool.Pool) *groupcommit.Group[bus.Message, bool] {
	g := &groupcommit.Group[bus.Message, bool]{}
	g.Write = func(ctx context.Context, batch []bus.Message) ([]bool, error) {
		fresh, err := insertEvents(ctx, pool, batch)
		var pe *pgconn.PgError
		if len(batch) > 1 && errors.As(err, &pe) {
			// Postgres refused the statement, not the connection: one
			// event may be at fault (a NUL in a text field, say). Each
			// caller tries its event alone (publishOne), so the others go
			// in and only it fails, rather than every webhook that shared
			// its batch being told to come back, and sharing it again.
			return nil, errSplit
		}
		if err != nil {
			return nil, fmt.Errorf("insert %d events: %w", len(batch), err)
		}
		out := make([]bool, len(batch))
		for i, m := range batch {
			out[i] = fresh[m.ID]
			delete(fresh, m.ID) // a second copy in this batch is a duplicate
		}
		return out, nil
	}
	return g
}

// errSplit tells Publish that its event shared a statement Postgres refused,
// and must be tried alone.
var errSplit = errors.New("pgbus: batch refused; retry alone")

// insertEvents inserts a batch and returns the ids that were new.
//
// The rows go in ordered by id. Two statements inserting the same ids in
// different orders (an event delivered twice at once, into two batches)
// would each wait for the other's uncommitted row: a deadlock, which the
// concurrent-publish test found. In one order, one of them simply waits.
// Arrival order (seq) within a batch is then id order: those events
// arrived together, so neither came first.
func insertEvents(ctx context.Context, pool *pgxpool.Pool, batch []bus.Message) (map[string]bool, error) {
	sorted := slices.Clone(batch)
	slices.SortStableFunc(sorted, func(a, b bus.Message) int { return strings.Compare(a.ID, b.ID) })
	ids := make([]string, len(sorted))
	keys := make([]string, len(sorted))
	types := make([]string, len(sorted))
	payloads := make([][]byte, len(sorted))
	created := make([]pgtype.Timestamptz, len(sorted)) // invalid: the database's now()
	for i, m := range sorted {
		ids[i], keys[i], types[i], payloads[i] = m.ID, m.Key, m.Type, m.Payload
		if payloads[i] == nil {
			payloads[i] = []byte{} // nil would be NULL
		}
		if !m.CreatedAt.IsZero() {
			created[i] = pgtype.Timestamptz{Time: m.CreatedAt, Valid: true}
		}
	}
	rows, err := pool.Query(ctx, publishSQL, ids, keys, types, payloads, created)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fresh := make(map[string]bool, len(batch))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		fresh[id] = true
	}
	return fresh, rows.Err()
}

// publishOne records one event through the group, and alone when the
// statement it shared was refused.
func (b *Bus) publishOne(ctx context.Context, m bus.Message) (inserted bool, err error) {
	inserted, err = b.publishes.Do(ctx, m)
	if errors.Is(err, errSplit) {
		fresh, err := insertEvents(ctx, b.pool, []bus.Message{m})
		if err != nil {
			return false, fmt.Errorf("insert event: %w", err)
		}
		return fresh[m.ID], nil
	}
	return inserted, err
}

// Handled events are marked done together too: after claims and
// confirmations were shared, one mark per event was the busiest statement.
func newDoneGroup(pool *pgxpool.Pool) *groupcommit.Group[claimed, bool] {
	type claim struct {
		id       string
		attempts int32
	}
	g := &groupcommit.Group[claimed, bool]{}
	g.Write = func(ctx context.Context, batch []claimed) ([]bool, error) {
		ids := make([]string, len(batch))
		attempts := make([]int32, len(batch))
		for i, c := range batch {
			ids[i], attempts[i] = c.msg.ID, c.attempts
		}
		marked := make(map[claim]bool, len(batch))
		b := &pgx.Batch{}
		b.Queue(asyncSQL)
		b.Queue(doneSQL, ids, attempts).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var c claim
				if err := rows.Scan(&c.id, &c.attempts); err != nil {
					return err
				}
				marked[c] = true
			}
			return rows.Err()
		})
		if err := pool.SendBatch(ctx, b).Close(); err != nil {
			return nil, fmt.Errorf("mark %d events done: %w", len(batch), err)
		}
		out := make([]bool, len(batch))
		for i, c := range batch {
			out[i] = marked[claim{c.msg.ID, c.attempts}]
		}
		return out, nil
	}
	return g
}
