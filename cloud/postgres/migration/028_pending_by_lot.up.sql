-- The PENDING holds are indexed by lot, then by when their time is up,
-- in place of by when alone (001). Both readers of due holds want a lot's:
-- a hold ends its lot's overdue holds in its window first (parkgate_hold),
-- and the expiry worker now ends each lot's due holds in one statement
-- (parkgate_expire_lot). With the index on hold_expires_at alone, the
-- generic plan of a hold's read, made from the statistics of a quiet hour
-- (no PENDING row: the index looked empty), read every lot's due holds to
-- find its lot's, and the worker, one transaction per hold, fell behind
-- the holds: 480 ended a second against 2,700 made, so the due holds not
-- yet ended grew by thousands a second (issue 17, README, Performance).
-- The worker finds the lots with due holds by asking each lot, one probe
-- of this index each.
--
-- Building it reads the whole table and blocks writes to reservations
-- while it does (a migration runs in a transaction, so not CONCURRENTLY):
-- on a table of millions of rows, seconds, at a deploy. It replaces an
-- index of as many entries, so a hold writes no more than before.
DROP INDEX IF EXISTS reservations_pending_hold_idx;
CREATE INDEX IF NOT EXISTS reservations_pending_lot_idx ON reservations (lot_id, hold_expires_at)
    WHERE status = 'PENDING';
