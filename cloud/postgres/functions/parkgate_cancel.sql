-- parkgate_cancel is a driver's cancellation, decided and written in one
-- round trip under the lot's lock (as every writer of a lot takes it), so
-- two cancels at once, or a cancel racing a payment or a gate event, see
-- each other's result and never both act.
-- Outcomes: 'not_found'; 'already' (it is CANCELLED: the same answer again,
-- nothing written); 'not_cancellable' (checked in, final, or a confirmed
-- booking past starts_at minus the lot's free_cancellation at p_now);
-- 'cancelled' (now CANCELLED, its delete in the lot's change log; or
-- 'cancelled_silent', a PENDING hold no edge has, its change in
-- silent_changes (migration 021), so the caller wakes no relay; a paid
-- confirmed booking owes back its price and its paid extensions':
-- refund_amount set, refund_status
-- 'pending' until the caller has asked the provider), with its
-- reservation.cancelled alert.
CREATE OR REPLACE FUNCTION parkgate_cancel(p_id uuid, p_now timestamptz)
RETURNS TABLE (outcome text, lot_id uuid) LANGUAGE plpgsql AS $$
DECLARE
    v_lot  uuid;
    v_seq  bigint;
    v_free interval;
    r      reservations%ROWTYPE;
    v_owes boolean;
    v_paid bigint;
BEGIN
    SELECT x.lot_id INTO v_lot FROM reservations x WHERE x.id = p_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid;
        RETURN;
    END IF;
    SELECT l.seq, l.free_cancellation INTO v_seq, v_free FROM lots l WHERE l.id = v_lot FOR NO KEY UPDATE;
    SELECT * INTO r FROM reservations x WHERE x.id = p_id FOR UPDATE;
    IF r.status = 'CANCELLED' THEN
        RETURN QUERY SELECT 'already'::text, v_lot;
        RETURN;
    END IF;
    IF NOT (r.status = 'PENDING' OR (r.status = 'CONFIRMED' AND p_now < r.starts_at - v_free)) THEN
        RETURN QUERY SELECT 'not_cancellable'::text, v_lot;
        RETURN;
    END IF;
    -- What was paid: the booking, and the extensions merged into it.
    SELECT r.price_amount + coalesce(sum(x.price_amount), 0) INTO v_paid
      FROM reservations x WHERE x.extends_id = r.id AND x.status = 'COMPLETED';
    -- Less what an operator refunded already (migration 016): the
    -- provider refunds what is left of each payment, and the refund shown
    -- adds the two up to what was paid.
    v_paid := v_paid - (SELECT coalesce(sum(f.amount), 0) FROM refunds f
                         WHERE f.reservation_id = r.id AND f.status <> 'failed');
    v_owes := r.status = 'CONFIRMED' AND v_paid > 0;
    UPDATE reservations x SET status = 'CANCELLED', updated_at = now(),
           refund_amount = CASE WHEN v_owes THEN v_paid END,
           refund_status = CASE WHEN v_owes THEN 'pending' END
     WHERE x.id = p_id;
    IF r.status = 'PENDING' THEN
        -- No edge holds a hold not paid for: nothing to tell them (021).
        INSERT INTO silent_changes (lot_id, after_seq, reservation_id, status, plate, starts_at, ends_at)
        VALUES (v_lot, v_seq, r.id, 'CANCELLED', r.plate, r.starts_at, r.ends_at);
    ELSE
        v_seq := v_seq + 1;
        UPDATE lots l SET seq = v_seq WHERE l.id = v_lot;
        INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
        VALUES (v_lot, v_seq, r.id, 'delete', 'CANCELLED', r.plate, r.starts_at, r.ends_at);
    END IF;
    -- An extension still unpaid has nothing left to extend: its interval is
    -- free at once, its session closed by the session worker, and a payment
    -- that slips through is refunded (parkgate_extend).
    UPDATE reservations x SET status = 'CANCELLED', updated_at = now()
     WHERE x.extends_id = r.id AND x.status = 'PENDING';
    -- The operators' alert, committed with the cancellation (issue 15).
    PERFORM parkgate_alert('reservation.cancelled', jsonb_build_object(
        'id', r.id, 'lot_id', v_lot, 'plate', r.plate, 'status', 'CANCELLED', 'previous_status', r.status,
        'starts_at', parkgate_rfc3339(r.starts_at), 'ends_at', parkgate_rfc3339(r.ends_at),
        'refund', CASE WHEN v_owes THEN jsonb_build_object('amount', v_paid, 'currency', r.currency,
                                                           'status', 'pending') END));
    RETURN QUERY SELECT CASE WHEN r.status = 'PENDING' THEN 'cancelled_silent' ELSE 'cancelled' END, v_lot;
END $$;
