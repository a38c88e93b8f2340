-- A PENDING hold keeps its place in its lot's history on its own row
-- rather than in a silent_changes row of its own (issue 17). The row it
-- wrote there said nothing the reservation's row does not: its lot,
-- reservation, plate and window, plus its place, (after_seq, id). Written
-- for every hold, it was a second heap row, a primary-key entry and a
-- foreign-key check per hold: without it, the shipped binary held 6% more
-- holds a second for 7% less of Postgres' CPU per hold (README,
-- Performance).
--
-- silent_after_seq and silent_id are that place: the lot's seq when the
-- hold was made, and a number from silent_changes' own sequence, drawn
-- under the lot's row lock as a silent change's id is. So the hold still
-- sorts among the lot's silent changes as its row there did (an expiry
-- made after it has a larger id). Both are NULL on a row made any other
-- way (a free lot's CONFIRMED hold is in the change log; an extension's
-- hold is in neither). Holds made before this migration keep their
-- silent_changes rows; lot_history reads both.
ALTER TABLE reservations
    ADD COLUMN IF NOT EXISTS silent_after_seq bigint,
    ADD COLUMN IF NOT EXISTS silent_id bigint;

-- lot_history is each lot's reservation changes in the order they were
-- made: the change log's (silent = 0), the silent ones (migration 021),
-- and the PENDING holds' places above. Sort by (lot_id, seq, silent). It
-- is for the audit (postgres.AllChanges, the simulator's no_overlap) and
-- tests: nothing on a service path reads it. A later migration that
-- drops a column it reads or changes that column's type, or drops
-- silent_changes, drops and re-creates it in the same transaction:
-- Postgres refuses each under a view.
--
-- A hold's window is the one it was made with. An extension merged since
-- (parkgate_extend) moved the booking's ends_at to its own end, and its
-- row starts where the booking ended then: so the first merged one's
-- start is the end the booking was held with. That holds while
-- parkgate_extend is the only writer of a reservation's window; a new
-- one (a booking moved or shortened) must keep the window a hold was
-- made with, or this view must read it from elsewhere.
CREATE OR REPLACE VIEW lot_history AS
SELECT o.lot_id, o.seq, 0::bigint AS silent, o.reservation_id, o.op, o.status,
       o.starts_at, o.ends_at, o.created_at
  FROM outbox o WHERE o.kind = ''
UNION ALL
SELECT s.lot_id, s.after_seq, s.id, s.reservation_id, '', s.status,
       s.starts_at, s.ends_at, s.created_at
  FROM silent_changes s
UNION ALL
SELECT r.lot_id, r.silent_after_seq, r.silent_id, r.id, '', 'PENDING',
       r.starts_at,
       coalesce((SELECT min(e.starts_at) FROM reservations e
                  WHERE e.extends_id = r.id AND e.status = 'COMPLETED'), r.ends_at),
       r.created_at
  FROM reservations r WHERE r.silent_id IS NOT NULL;
