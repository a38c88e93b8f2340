-- The PENDING holds are indexed by lot, then by when their time is up,
-- in place of by when alone (001). Both readers of due holds want a lot's:
-- a hold ends its lot's overdue holds in its window first (parkgate_hold),
-- and the expiry worker now ends each lot's due holds together
-- (parkgate_expire_lot). With the index on hold_expires_at alone, the
-- generic plan of a hold's read, made from the statistics of a quiet hour
-- (no PENDING row: the index looked empty), read every lot's due holds to
-- find its lot's, and the worker, one transaction per hold, fell behind
-- the holds: 480 ended a second against 2,700 made, so the due holds not
-- yet ended grew by thousands a second (issue 17, README, Performance).
-- The worker finds the lots with due holds by asking each lot, one probe
-- of this index each.
--
-- The new index is built first and the old one dropped last: DROP INDEX
-- locks the table against reads too, until the migration commits, so
-- dropped first it would have stopped every read for the whole build.
-- The build itself blocks writes to reservations while it reads the table
-- (a migration runs in a transaction, so not CONCURRENTLY): on a table of
-- millions of rows, seconds, at a deploy. It replaces an index of as many
-- entries, so a hold writes no more than before. While a rollout is under
-- way, a replica of the binary before this one (postgres.ErrSchemaNewer)
-- still runs its own worker, whose read of the 200 due holds that end
-- first reads every due entry of this index and sorts them: milliseconds
-- for tens of thousands, until it is replaced.
CREATE INDEX IF NOT EXISTS reservations_pending_lot_idx ON reservations (lot_id, hold_expires_at)
    WHERE status = 'PENDING';
DROP INDEX IF EXISTS reservations_pending_hold_idx;
