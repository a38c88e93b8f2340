-- parkgate_expire_lot ends up to p_limit PENDING holds of a lot whose time
-- is up, those that ended first, in one statement, and returns how many it
-- ended: under the lot's row lock, each one's status and a silent_changes
-- row placed at the lot's seq then, as parkgate_change does for one hold
-- (a PENDING hold was never an edge's, so its end is silent: migration
-- 021). The caller asks again while p_limit come back, each call its own
-- short transaction, so a lot's backlog (after an outage) never holds its
-- lock for long at a stretch.
--
-- Why: every unpaid hold ends here, and the expiry worker ending them one
-- transaction each (a round trip, a lot lock and a commit per hold) did
-- 0.4-0.55 ms a hold and fell behind the holds made (migration 028). One
-- statement for every lot at once held all their locks for the statement,
-- and the calm lots' holds that met them went the slow way: one lot at a
-- time (postgres.ExpireDue).
--
-- A lot another transaction holds is waited for, briefly (lock_timeout,
-- this transaction's own): a lot in a rush has its batches' transactions
-- one after another, and a worker that skipped a locked lot got one in
-- three to one in fifteen of its tries, leaving its due holds (and their
-- Checkout Sessions) for ten seconds and more. Past the wait, 0: the lot
-- waits for the next tick. The worker holds no other lock meanwhile, so
-- the wait cannot be part of a deadlock.
--
-- Its first form, without p_limit, never reached a release; a database
-- a build of it ran on drops it here, so the two do not make calls
-- ambiguous.
DROP FUNCTION IF EXISTS parkgate_expire_lot(uuid);

CREATE OR REPLACE FUNCTION parkgate_expire_lot(p_lot uuid, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_seq  bigint;
    v_n    integer;
    v_wait text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', '200ms', true);
    BEGIN
        SELECT l.seq INTO v_seq FROM lots l WHERE l.id = p_lot FOR NO KEY UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    -- The short wait is for the lot only: a hold's row is waited for as
    -- any writer waits (its writer, one that does not take the lot's lock,
    -- as FinishHold, is quick and waits for nothing of the worker's).
    PERFORM set_config('lock_timeout', v_wait, true);
    IF v_seq IS NULL THEN -- no such lot
        RETURN 0;
    END IF;
    -- The status and the time are asked again of each row as it is
    -- locked: a payment may have moved the hold since the ids were read.
    WITH expired AS (
        UPDATE reservations x SET status = 'EXPIRED', updated_at = now()
         WHERE x.id IN (SELECT y.id FROM reservations y
                         WHERE y.lot_id = p_lot AND y.status = 'PENDING' AND y.hold_expires_at <= now()
                         ORDER BY y.hold_expires_at
                         LIMIT p_limit)
           AND x.lot_id = p_lot AND x.status = 'PENDING' AND x.hold_expires_at <= now()
        RETURNING x.id, x.plate, x.starts_at, x.ends_at
    ), logged AS (
        INSERT INTO silent_changes (lot_id, after_seq, reservation_id, status, plate, starts_at, ends_at)
        SELECT p_lot, v_seq, e.id, 'EXPIRED', e.plate, e.starts_at, e.ends_at
          FROM expired e
         ORDER BY e.id
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM logged;
    RETURN v_n;
END $$;
