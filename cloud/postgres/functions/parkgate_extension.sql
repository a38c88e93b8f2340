-- parkgate_hold_extension holds the interval [p_from, p_ends) on the spot of
-- reservation p_parent for an extension, in one round trip under the lot's
-- lock, claiming the idempotency key as parkgate_hold does. p_from is the
-- parent's ends_at the caller priced the extension from.
-- Outcomes: 'held'; 'key_exists' (nothing written); 'not_found';
-- 'not_extendable' (the parent is not CONFIRMED or CHECKED_IN, or its
-- window has ended at p_now); 'changed' (its ends_at is no longer p_from);
-- 'no_availability' (another active booking of the spot overlaps). Only
-- 'held' leaves the key behind.
CREATE OR REPLACE FUNCTION parkgate_hold_extension(
    p_id uuid, p_parent uuid, p_from timestamptz, p_ends timestamptz, p_hold interval,
    p_price bigint, p_key text, p_hash bytea, p_lease interval, p_now timestamptz)
RETURNS TABLE (outcome text, hold_expires_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_lot uuid;
    v_seq bigint;
    r     reservations%ROWTYPE;
BEGIN
    SELECT x.lot_id INTO v_lot FROM reservations x WHERE x.id = p_parent AND x.extends_id IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT l.seq INTO v_seq FROM lots l WHERE l.id = v_lot FOR NO KEY UPDATE;

    INSERT INTO idempotency_keys (key, request_hash, reservation_id, locked_until, expires_at)
    VALUES (p_key, p_hash, p_id, now() + p_lease, now() + interval '24 hours')
    ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'key_exists'::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT * INTO r FROM reservations x WHERE x.id = p_parent FOR UPDATE;
    IF r.status NOT IN ('CONFIRMED', 'CHECKED_IN') OR r.ends_at <= p_now THEN
        DELETE FROM idempotency_keys k WHERE k.key = p_key;
        RETURN QUERY SELECT 'not_extendable'::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF r.ends_at <> p_from THEN
        DELETE FROM idempotency_keys k WHERE k.key = p_key;
        RETURN QUERY SELECT 'changed'::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    -- A lapsed hold on the spot blocks nobody, as in parkgate_hold. No edge
    -- held it: its end is silent (migration 021).
    WITH expired AS (
        UPDATE reservations x SET status = 'EXPIRED', updated_at = now()
         WHERE x.spot_id = r.spot_id AND x.status = 'PENDING' AND x.hold_expires_at <= now()
           AND tstzrange(x.starts_at, x.ends_at) && tstzrange(p_from, p_ends)
        RETURNING x.id, x.plate, x.starts_at, x.ends_at
    )
    INSERT INTO silent_changes (lot_id, after_seq, reservation_id, status, plate, starts_at, ends_at)
    SELECT v_lot, v_seq, e.id, 'EXPIRED', e.plate, e.starts_at, e.ends_at
      FROM expired e ORDER BY e.id;

    IF EXISTS (SELECT 1 FROM reservations x
                WHERE x.spot_id = r.spot_id AND x.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN')
                  AND tstzrange(x.starts_at, x.ends_at) && tstzrange(p_from, p_ends)) THEN
        DELETE FROM idempotency_keys k WHERE k.key = p_key;
        RETURN QUERY SELECT 'no_availability'::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    -- The exclusion constraint stays the judge: a writer that does not
    -- take the lot's lock fails here rather than overlapping.
    INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status,
                              hold_expires_at, price_amount, currency, extends_id)
    VALUES (p_id, v_lot, r.spot_id, r.plate, p_from, p_ends, 'PENDING',
            now() + p_hold, p_price, r.currency, p_parent);
    RETURN QUERY SELECT 'held'::text, now() + p_hold, now();
END $$;

-- parkgate_extend merges a paid extension into its reservation: the
-- extension row becomes COMPLETED (so its interval is no longer held twice)
-- and the reservation's ends_at moves to its end, with the reservation's
-- change in the lot's log, so the edges learn the new window.
-- Outcomes: 'extended'; 'already' (merged before: a duplicate event);
-- 'refund' (the extension's hold lapsed, or the reservation was cancelled
-- or is over: the extension is EXPIRED, and the money goes back);
-- 'not_found'.
CREATE OR REPLACE FUNCTION parkgate_extend(p_ext uuid, p_intent text, p_now timestamptz)
RETURNS TABLE (outcome text, lot_id uuid) LANGUAGE plpgsql AS $$
DECLARE
    v_lot uuid;
    v_seq bigint;
    e     reservations%ROWTYPE;
    r     reservations%ROWTYPE;
BEGIN
    SELECT x.lot_id INTO v_lot FROM reservations x WHERE x.id = p_ext AND x.extends_id IS NOT NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid;
        RETURN;
    END IF;
    SELECT l.seq INTO v_seq FROM lots l WHERE l.id = v_lot FOR NO KEY UPDATE;
    SELECT * INTO e FROM reservations x WHERE x.id = p_ext FOR UPDATE;
    SELECT * INTO r FROM reservations x WHERE x.id = e.extends_id FOR UPDATE;
    IF e.status = 'COMPLETED' THEN
        RETURN QUERY SELECT 'already'::text, v_lot;
        RETURN;
    END IF;
    IF e.status <> 'PENDING' OR e.hold_expires_at <= p_now
       OR r.status NOT IN ('CONFIRMED', 'CHECKED_IN') OR r.ends_at <> e.starts_at THEN
        UPDATE reservations x SET status = CASE WHEN x.status = 'PENDING' THEN 'EXPIRED' ELSE x.status END,
               payment_intent_id = coalesce(nullif(p_intent, ''), x.payment_intent_id), updated_at = now()
         WHERE x.id = p_ext;
        RETURN QUERY SELECT 'refund'::text, v_lot;
        RETURN;
    END IF;
    UPDATE reservations x SET status = 'COMPLETED', updated_at = now(),
           payment_intent_id = coalesce(nullif(p_intent, ''), x.payment_intent_id)
     WHERE x.id = p_ext;
    -- The only writer of a reservation's window. lot_history (migration
    -- 027) finds the end a hold was made with as its first merged
    -- extension's start, which is the booking's end before this merge
    -- (r.ends_at = e.starts_at above): a writer that moves a window any
    -- other way must keep that end for it.
    UPDATE reservations x SET ends_at = e.ends_at, updated_at = now() WHERE x.id = r.id;
    v_seq := v_seq + 1;
    UPDATE lots l SET seq = v_seq WHERE l.id = v_lot;
    INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
    VALUES (v_lot, v_seq, r.id, CASE WHEN r.status IN ('CONFIRMED', 'CHECKED_IN') THEN 'upsert' ELSE 'delete' END,
            r.status, r.plate, r.starts_at, e.ends_at);
    RETURN QUERY SELECT 'extended'::text, v_lot;
END $$;
