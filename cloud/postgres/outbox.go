package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// The outbox is each lot's change log: the catch-up read of it, and the
// leases and marks of the relay that publishes it.

var (
	_ cloud.ChangeLog = (*DB)(nil)
	_ cloud.Outbox    = (*DB)(nil)
)

// canonicalUUID returns s in Postgres' text form of a uuid, so lot ids the
// store hands out (and the relay signs) read the same whichever way a caller
// spelled them (upper case, braces, urn:uuid:, no hyphens: whatever
// uuid.Parse takes), and false for anything that is not a uuid.
func canonicalUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// canonicalize rewrites *s into its canonical uuid spelling and reports
// whether it is a uuid at all. Every id reaches a query only through it (or
// canonicalUUID): Postgres' uuid input refuses some spellings uuid.Parse
// takes (urn:uuid:), and such an id passed on raw failed the query, a 500
// where the lot or reservation exists.
func canonicalize(s *string) bool {
	c, ok := canonicalUUID(*s)
	if ok {
		*s = c
	}
	return ok
}

// One statement, so LastSeq and the rows come from one snapshot: an edge
// that reads LastSeq = n has been handed every change up to n it asked for.
const sqlReadChanges = `
SELECT l.seq, o.seq, o.kind, o.reservation_id::text, o.op, o.status, o.plate, o.starts_at, o.ends_at
  FROM lots l
  LEFT JOIN LATERAL (
        SELECT x.seq, x.kind, x.reservation_id, x.op, x.status, x.plate, x.starts_at, x.ends_at
          FROM outbox x
         WHERE x.lot_id = l.id AND x.seq > $2
         ORDER BY x.seq
         LIMIT $3) o ON true
 WHERE l.id = $1
 ORDER BY o.seq`

// ReadChanges implements cloud.ChangeLog.
func (db *DB) ReadChanges(ctx context.Context, lotID string, after int64, limit int) (cloud.ChangePage, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return cloud.ChangePage{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	if after < 0 {
		return cloud.ChangePage{}, cloud.FieldError("after", "must not be negative")
	}
	if limit <= 0 {
		limit = cloud.DefaultChangesLimit
	}
	limit = min(limit, cloud.MaxChangesLimit)

	// One row more than asked tells whether another page waits.
	rows, err := db.Pool.Query(ctx, sqlReadChanges, lot, after, limit+1)
	if err != nil {
		return cloud.ChangePage{}, fail("read changes", err)
	}
	defer rows.Close()
	page := cloud.ChangePage{LotID: lot, Changes: []cloud.Change{}}
	found := false
	for rows.Next() {
		found = true
		var (
			seq              *int64
			kind             *protocol.ChangeKind
			id, plate        *string
			op               *protocol.Op
			status           *cloud.Status
			startsAt, endsAt *time.Time
		)
		if err := rows.Scan(&page.LastSeq, &seq, &kind, &id, &op, &status, &plate, &startsAt, &endsAt); err != nil {
			return cloud.ChangePage{}, fail("read changes", err)
		}
		if seq == nil {
			continue // the lot has no changes after after
		}
		if len(page.Changes) == limit {
			page.More = true
			continue
		}
		page.Changes = append(page.Changes, cloud.Change{Seq: *seq, Kind: *kind, ReservationID: *id, Op: *op, Status: *status,
			Plate: *plate, StartsAt: *startsAt, EndsAt: *endsAt})
	}
	if err := rows.Err(); err != nil {
		return cloud.ChangePage{}, fail("read changes", err)
	}
	if !found {
		return cloud.ChangePage{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return page, nil
}

// sqlClaimLots takes the lease of up to $3 lots with unpublished changes
// that no other owner holds (or whose lease ran out: its owner died),
// oldest backlog first so no lot starves. $1's own lease counts as free
// unless the lot is in $4 (being drained): a drain whose release failed
// with the database left it behind, and waiting it out would hold the
// lot's changes back from its edges for a whole TTL after the database
// came back. The upsert inserts in lot order so that two replicas claiming
// overlapping sets lock rows in the same order; its WHERE re-checks the
// lease after waiting for a concurrent claim, so a lot goes to one owner.
const sqlClaimLots = `
WITH pending AS (
    SELECT o.lot_id
      FROM outbox o
     WHERE o.published_at IS NULL
       AND o.lot_id <> ALL ($4::uuid[])
       AND NOT EXISTS (SELECT 1 FROM relay_leases r
                        WHERE r.lot_id = o.lot_id AND r.expires_at > now() AND r.owner <> $1)
     GROUP BY o.lot_id
     ORDER BY min(o.created_at)
     LIMIT $3
)
INSERT INTO relay_leases AS r (lot_id, owner, expires_at)
SELECT p.lot_id, $1, now() + $2 * interval '1 millisecond' FROM pending p ORDER BY p.lot_id
ON CONFLICT (lot_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE r.expires_at <= now() OR r.owner = excluded.owner
RETURNING r.lot_id::text`

// sqlClaimLotsOf is sqlClaimLots over the lots in $3 alone: a probe of the
// unpublished index per lot rather than a walk through all of it (which,
// between two vacuums, holds an entry for every change marked since). It
// returns every named lot with unpublished changes, and whether $1 took it:
// one it did not take (another owner holds it) may need claiming again once
// that owner lets it go.
const sqlClaimLotsOf = `
WITH woken AS (
    SELECT DISTINCT w.lot_id
      FROM unnest($3::uuid[]) AS w(lot_id)
     WHERE w.lot_id <> ALL ($4::uuid[])
       AND EXISTS (SELECT 1 FROM outbox o WHERE o.lot_id = w.lot_id AND o.published_at IS NULL)
), pending AS (
    SELECT w.lot_id FROM woken w
     WHERE NOT EXISTS (SELECT 1 FROM relay_leases r
                        WHERE r.lot_id = w.lot_id AND r.expires_at > now() AND r.owner <> $1)
), claimed AS (
    INSERT INTO relay_leases AS r (lot_id, owner, expires_at)
    SELECT p.lot_id, $1, now() + $2 * interval '1 millisecond' FROM pending p ORDER BY p.lot_id
    ON CONFLICT (lot_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
     WHERE r.expires_at <= now() OR r.owner = excluded.owner
    RETURNING r.lot_id
)
SELECT w.lot_id::text, c.lot_id IS NOT NULL FROM woken w LEFT JOIN claimed c ON c.lot_id = w.lot_id`

// sqlClaimedChanges reads, right after sqlClaimLots in the same implicit
// transaction, the first unpublished changes of each lot $1 holds and is
// not draining ($2): those it has just claimed. Its own statement, so its
// snapshot is taken after the claim's: a mark another owner committed
// while the claim waited for its lease row is seen, and its changes are not
// sent again.
const sqlClaimedChanges = `
SELECT r.lot_id::text, o.seq, o.kind, o.reservation_id::text, o.op, o.status, o.plate, o.starts_at, o.ends_at
  FROM relay_leases r
 CROSS JOIN LATERAL (
       SELECT x.seq, x.kind, x.reservation_id, x.op, x.status, x.plate, x.starts_at, x.ends_at
         FROM outbox x
        WHERE x.lot_id = r.lot_id AND x.published_at IS NULL
        ORDER BY x.seq
        LIMIT $3) o
 WHERE r.owner = $1 AND r.lot_id <> ALL ($2::uuid[])
 ORDER BY r.lot_id, o.seq`

// ClaimOutboxLots implements cloud.Outbox: the claim and the first changes
// of every lot it took in one round trip, where a read per lot took one
// each. On a calm day each claimed lot has a change or two, and those
// reads were a third of what the relay asked of the database.
func (db *DB) ClaimOutboxLots(ctx context.Context, owner string, ttl time.Duration, max int, busy []string, limit int) ([]cloud.ClaimedLot, error) {
	if busy == nil {
		busy = []string{}
	}
	return db.claim(ctx, sqlClaimLots, []any{owner, ttl.Milliseconds(), max, busy}, owner, busy, limit,
		func(rows pgx.Rows) ([]string, error) { return pgx.CollectRows(rows, pgx.RowTo[string]) })
}

// ClaimOutboxLotsOf implements cloud.Outbox.
func (db *DB) ClaimOutboxLotsOf(ctx context.Context, owner string, ttl time.Duration, lots, busy []string, limit int) (claimed []cloud.ClaimedLot, waiting []string, err error) {
	if busy == nil {
		busy = []string{}
	}
	ids := make([]string, 0, len(lots))
	for _, l := range lots {
		if c, ok := canonicalUUID(l); ok {
			ids = append(ids, c)
		}
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	claimed, err = db.claim(ctx, sqlClaimLotsOf, []any{owner, ttl.Milliseconds(), ids, busy}, owner, busy, limit,
		func(rows pgx.Rows) ([]string, error) {
			var took []string
			for rows.Next() {
				var lot string
				var ok bool
				if err := rows.Scan(&lot, &ok); err != nil {
					return nil, err
				}
				if ok {
					took = append(took, lot)
				} else {
					waiting = append(waiting, lot)
				}
			}
			return took, rows.Err()
		})
	if err != nil {
		return nil, nil, err
	}
	return claimed, waiting, nil
}

// claim runs a claim statement (its $1 the owner; took reads the lots it
// took from its rows) and, with limit, reads the first changes of those
// lots in the same round trip.
func (db *DB) claim(ctx context.Context, sql string, args []any, owner string, busy []string, limit int,
	took func(pgx.Rows) ([]string, error)) ([]cloud.ClaimedLot, error) {
	var out []cloud.ClaimedLot
	index := map[string]int{}
	b := &pgx.Batch{}
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		lots, err := took(rows)
		for _, lot := range lots {
			index[lot] = len(out)
			out = append(out, cloud.ClaimedLot{LotID: lot})
		}
		return err
	})
	if limit > 0 {
		b.Queue(sqlClaimedChanges, owner, busy, limit).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var lot string
				var c cloud.Change
				if err := rows.Scan(append([]any{&lot}, changeFields(&c)...)...); err != nil {
					return err
				}
				// A lease of its own the claim did not return (more than
				// max lots pending) is not this drain's: left for the next.
				if i, ok := index[lot]; ok {
					out[i].Changes = append(out[i].Changes, c)
				}
			}
			return rows.Err()
		})
	}
	if err := db.Pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fail("claim lots", err)
	}
	return out, nil
}

// changeFields are the scan targets of an outbox row's seq, kind,
// reservation_id, op, status, plate, starts_at and ends_at, in that order,
// as the relay's reads select them.
func changeFields(c *cloud.Change) []any {
	return []any{&c.Seq, &c.Kind, &c.ReservationID, &c.Op, &c.Status, &c.Plate, &c.StartsAt, &c.EndsAt}
}

// UnpublishedChanges implements cloud.Outbox. The run is gap-free because a
// lot's rows commit in seq order: the lot row lock orders its writers.
func (db *DB) UnpublishedChanges(ctx context.Context, lotID string, limit int) ([]cloud.Change, error) {
	rows, err := db.Pool.Query(ctx, `
SELECT seq, kind, reservation_id::text, op, status, plate, starts_at, ends_at
  FROM outbox
 WHERE lot_id = $1 AND published_at IS NULL
 ORDER BY seq
 LIMIT $2`, lotID, limit)
	if err != nil {
		return nil, fail("read outbox", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cloud.Change, error) {
		var c cloud.Change
		err := row.Scan(changeFields(&c)...)
		return c, err
	})
	if err != nil {
		return nil, fail("read outbox", err)
	}
	return out, nil
}

// The statements of MarkPublished, each over arrays of lots so that the
// marks of many drains cost one round trip and one commit.
const (
	sqlMarkPublished = `
WITH marked AS (
    UPDATE outbox o SET published_at = clock_timestamp()
      FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS m(lot_id, first, last, i)
     WHERE o.lot_id = m.lot_id AND o.seq BETWEEN m.first AND m.last AND o.published_at IS NULL
    RETURNING m.i, o.seq, extract(epoch FROM o.published_at - o.created_at)::float8 AS lag
)
SELECT i, lag FROM marked ORDER BY i, seq`
	sqlReleaseLeases = `
DELETE FROM relay_leases r USING unnest($2::uuid[]) AS m(lot_id)
 WHERE r.lot_id = m.lot_id AND r.owner = $1
RETURNING r.lot_id::text`
	sqlRenewLeases = `
UPDATE relay_leases r SET expires_at = now() + $3 * interval '1 millisecond'
  FROM unnest($2::uuid[]) AS m(lot_id)
 WHERE r.lot_id = m.lot_id AND r.owner = $1
RETURNING r.lot_id::text`
)

// MarkPublished implements cloud.Outbox: three statements at most, however
// many lots, in one implicit transaction. The lags are by the database's
// clock, so app clock skew does not show up as lag.
//
// Two replicas whose groups share two lots could deadlock (the database
// breaks it, and the loser's drain retries); it takes a lease lost on both
// lots at once, since a lot's marks come only from its lease holder.
func (db *DB) MarkPublished(ctx context.Context, owner string, ttl time.Duration, marks []cloud.Mark) ([]cloud.Marked, error) {
	out := make([]cloud.Marked, len(marks))
	// pos[k] is the mark the k-th sent run belongs to; a mark whose lot is
	// no uuid is not sent, and is answered as not held, without failing the
	// other drains' marks.
	var lots, release, renew []string
	var first, last []int64
	var pos []int
	for i, m := range marks {
		lot, ok := canonicalUUID(m.LotID)
		if !ok {
			continue
		}
		lots, first, last, pos = append(lots, lot), append(first, m.From), append(last, m.To), append(pos, i)
		if m.Release {
			release = append(release, lot)
		} else {
			renew = append(renew, lot)
		}
	}
	if len(lots) == 0 {
		return out, nil
	}
	// Leases are by lot: a group holds a lot once, as a replica drains a
	// lot in one drain at a time.
	held := map[string]bool{}
	heldRows := func(rows pgx.Rows) error {
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, lot := range got {
			held[lot] = true
		}
		return err
	}
	var b pgx.Batch
	b.Queue(sqlMarkPublished, lots, first, last).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k int
			var lag float64
			if err := rows.Scan(&k, &lag); err != nil {
				return err
			}
			i := pos[k-1] // WITH ORDINALITY counts from 1
			out[i].Lags = append(out[i].Lags, lag)
		}
		return rows.Err()
	})
	if len(release) > 0 {
		b.Queue(sqlReleaseLeases, owner, release).Query(heldRows)
	}
	if len(renew) > 0 {
		b.Queue(sqlRenewLeases, owner, renew, ttl.Milliseconds()).Query(heldRows)
	}
	if err := db.Pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fail("mark published", err)
	}
	for k, lot := range lots {
		out[pos[k]].Held = held[lot]
	}
	return out, nil
}

// ReleaseOutboxLease implements cloud.Outbox; a released lot may be taken
// at once by any replica woken by its next change.
func (db *DB) ReleaseOutboxLease(ctx context.Context, lotID, owner string) error {
	if _, err := db.Pool.Exec(ctx, `DELETE FROM relay_leases WHERE lot_id = $1 AND owner = $2`, lotID, owner); err != nil {
		return fail("release lease", err)
	}
	return nil
}

// ReleaseOutboxLeases implements cloud.Outbox.
func (db *DB) ReleaseOutboxLeases(ctx context.Context, owner string) error {
	if _, err := db.Pool.Exec(ctx, `DELETE FROM relay_leases WHERE owner = $1`, owner); err != nil {
		return fail("release leases", err)
	}
	return nil
}

// OutboxBacklog implements cloud.Outbox.
func (db *DB) OutboxBacklog(ctx context.Context) (int64, error) {
	var n int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fail("count backlog", err)
	}
	return n, nil
}
