-- parkgate_expire_lot ends every PENDING hold of a lot whose time is up, in
-- one statement, and returns how many it ended: under the lot's row lock,
-- each one's status and a silent_changes row placed at the lot's seq then,
-- as parkgate_change does for one hold (a PENDING hold was never an
-- edge's, so its end is silent: migration 021). A lot another transaction
-- holds (a surge's batch, a payment's confirmation) is skipped, not waited
-- for: 0, and its holds wait for the worker's next turn, or for the next
-- hold on the lot to end those in its window itself.
--
-- Why: every unpaid hold ends here, and the expiry worker ending them one
-- transaction each (a round trip, a lot lock and a commit per hold) did
-- 0.4-0.55 ms a hold and fell behind the holds made (migration 028). One
-- statement for every lot at once held all their locks for the statement,
-- and the calm lots' holds that met them went the slow way: one short
-- transaction per lot (postgres.ExpireDue).
CREATE OR REPLACE FUNCTION parkgate_expire_lot(p_lot uuid)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_seq bigint;
    v_n   integer;
BEGIN
    SELECT l.seq INTO v_seq FROM lots l WHERE l.id = p_lot FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- The status is asked again of each row as it is locked: a payment
    -- may have moved the hold since this statement's snapshot.
    WITH expired AS (
        UPDATE reservations x SET status = 'EXPIRED', updated_at = now()
         WHERE x.lot_id = p_lot AND x.status = 'PENDING' AND x.hold_expires_at <= now()
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
