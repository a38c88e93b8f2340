-- parkgate_change moves one reservation to a new status and appends the
-- change to its lot's log, in one round trip. It locks the lot row first:
-- every writer of a lot takes that lock before touching its reservations,
-- so they queue instead of deadlocking on the exclusion constraint's index.
-- Returns no row when the reservation is not in one of p_from, or when
-- p_held_at is given and the hold no longer stands at that time (a payment
-- confirms a PENDING hold with this one statement instead of a read and a
-- write; when the hold has lapsed nothing changes and the caller goes the
-- refund way). The payment columns are set in the same statement when
-- given, so a payment event costs one round trip. A move to REFUNDED raises
-- the payment.refunded alert in the same transaction.
--
-- The change log's op says whether the edges may open the gate for the new
-- status: 'upsert' for exactly the statuses protocol.Status.OpensGate names.
-- TestFunctionsWriteOpsAsProtocol holds this copy of the rule to that one.
-- A 'delete' of a reservation no edge holds (its old status opened no gate:
-- a PENDING hold expired or cancelled, a lapsed one refunded) tells the
-- edges nothing: it goes to silent_changes instead, the lot's seq stays,
-- and the row returned has a NULL seq (migration 021).
CREATE OR REPLACE FUNCTION parkgate_change(p_id uuid, p_from text[], p_to text,
    p_payment_intent text DEFAULT NULL, p_refund text DEFAULT NULL, p_session_closed boolean DEFAULT false,
    p_held_at timestamptz DEFAULT NULL)
RETURNS TABLE (lot_id uuid, seq bigint, status text) LANGUAGE plpgsql AS $$
DECLARE
    v_lot uuid;
    v_seq bigint;
    v_old text;
    r     reservations%ROWTYPE;
BEGIN
    SELECT x.lot_id INTO v_lot FROM reservations x WHERE x.id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The lot row first, as every writer of the lot takes it (see 001);
    -- under it, the reservation's status cannot move. NO KEY: the strength
    -- the UPDATE of its seq takes, so inserts that only reference the lot
    -- (a gate event's row) are not held up by it.
    SELECT l.seq INTO v_seq FROM lots l WHERE l.id = v_lot FOR NO KEY UPDATE;
    SELECT x.status INTO v_old FROM reservations x WHERE x.id = p_id;
    UPDATE reservations x SET status = p_to, updated_at = now(),
        checked_in_at = CASE WHEN p_to = 'CHECKED_IN' THEN now() ELSE x.checked_in_at END,
        checked_out_at = CASE WHEN p_to = 'COMPLETED' THEN now() ELSE x.checked_out_at END,
        payment_intent_id = coalesce(nullif(p_payment_intent, ''), x.payment_intent_id),
        refund_id = coalesce(nullif(p_refund, ''), x.refund_id),
        session_closed_at = CASE WHEN p_session_closed THEN coalesce(x.session_closed_at, now()) ELSE x.session_closed_at END
     WHERE x.id = p_id AND x.status = ANY (p_from)
       AND (p_held_at IS NULL OR x.hold_expires_at > p_held_at)
    RETURNING x.* INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_to NOT IN ('CONFIRMED', 'CHECKED_IN') AND v_old NOT IN ('CONFIRMED', 'CHECKED_IN') THEN
        INSERT INTO silent_changes (lot_id, after_seq, reservation_id, status, plate, starts_at, ends_at)
        VALUES (v_lot, v_seq, r.id, p_to, r.plate, r.starts_at, r.ends_at);
        v_seq := NULL;
    ELSE
        v_seq := v_seq + 1;
        UPDATE lots l SET seq = v_seq WHERE l.id = v_lot;
        INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
        VALUES (v_lot, v_seq, r.id,
                CASE WHEN p_to IN ('CONFIRMED', 'CHECKED_IN') THEN 'upsert' ELSE 'delete' END,
                p_to, r.plate, r.starts_at, r.ends_at);
    END IF;
    IF p_to = 'REFUNDED' THEN
        -- A payment that came too late, refunded whole (issue 15's alert).
        PERFORM parkgate_alert('payment.refunded', jsonb_build_object(
            'reservation_id', r.id, 'lot_id', v_lot, 'amount', r.price_amount, 'currency', r.currency,
            'refund_id', r.refund_id, 'reason', 'late_payment'));
    END IF;
    RETURN QUERY SELECT v_lot, v_seq, p_to;
END $$;
