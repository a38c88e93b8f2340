-- parkgate_refund records an operator's refund of a reservation, decided in
-- one round trip under the reservation's row lock (parkgate_cancel takes the
-- same lock), so two refunds at once, or a refund racing a cancellation,
-- see each other's rows and their sum never passes what was paid.
--
-- What was paid: the booking's payment, each paid extension's, and a paid
-- overstay's, each a payment intent of its own. Already given back: a
-- cancellation's refund (all of the booking's and its extensions'
-- payments), a late payment's (status REFUNDED: the booking's), and the
-- refunds recorded here (but failed ones).
--
-- p_amount NULL is all that is left. With p_key, the same key on the same
-- reservation is the same refund: 'exists' with its id and stored answer
-- (NULL until a caller stored it), 'in_flight' while its first caller may
-- still be at it, 'key_reused' when p_hash differs. Otherwise 'exceeds' (nothing written; left says what is left),
-- or 'created': the refund, split over the payments with money left in
-- the order above, one refund_parts row each.
CREATE OR REPLACE FUNCTION parkgate_refund(p_id uuid, p_res uuid, p_amount bigint, p_key text, p_hash bytea)
RETURNS TABLE (outcome text, refund_id uuid, response_body bytea, left_amount bigint) LANGUAGE plpgsql AS $$
DECLARE
    r      reservations%ROWTYPE;
    f      refunds%ROWTYPE;
    v_left bigint;
    v_want bigint;
    v_take bigint;
    v_intents text[];
    v_amounts bigint[];
BEGIN
    SELECT * INTO r FROM reservations x WHERE x.id = p_res AND x.extends_id IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::bytea, NULL::bigint;
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT * INTO f FROM refunds x WHERE x.reservation_id = p_res AND x.idempotency_key = p_key;
        IF FOUND THEN
            IF f.request_hash <> p_hash THEN
                RETURN QUERY SELECT 'key_reused'::text, f.id, NULL::bytea, NULL::bigint;
                RETURN;
            END IF;
            -- A pending refund without its answer is in flight for 30
            -- seconds from its last touch (its creation, or the refund
            -- worker's claim); after that this caller takes it over.
            IF f.response_body IS NULL AND f.status = 'pending' THEN
                UPDATE refunds x SET updated_at = now()
                 WHERE x.id = f.id AND x.updated_at <= now() - interval '30 seconds';
                IF NOT FOUND THEN
                    RETURN QUERY SELECT 'in_flight'::text, f.id, NULL::bytea, NULL::bigint;
                    RETURN;
                END IF;
            END IF;
            RETURN QUERY SELECT 'exists'::text, f.id, f.response_body, NULL::bigint;
            RETURN;
        END IF;
    END IF;

    -- Each payment with what is left of it, in the order refunds take from
    -- them.
    SELECT coalesce(array_agg(t.intent ORDER BY t.ord), '{}'), coalesce(array_agg(t.amount ORDER BY t.ord), '{}')
      INTO v_intents, v_amounts
      FROM (
        SELECT s.ord, s.intent, s.amount - coalesce((
               SELECT sum(q.amount) FROM refund_parts q JOIN refunds x ON x.id = q.refund_id
                WHERE x.reservation_id = p_res AND x.status <> 'failed' AND q.payment_intent_id = s.intent), 0) AS amount
          FROM (
            SELECT 0::bigint AS ord, r.payment_intent_id AS intent, r.price_amount AS amount
             WHERE r.payment_intent_id IS NOT NULL AND r.price_amount > 0
               AND r.refund_amount IS NULL AND r.status <> 'REFUNDED'
            UNION ALL
            SELECT row_number() OVER (ORDER BY x.created_at, x.id), x.payment_intent_id, x.price_amount
              FROM reservations x
             WHERE x.extends_id = r.id AND x.status = 'COMPLETED' AND x.price_amount > 0
               AND x.payment_intent_id IS NOT NULL AND r.refund_amount IS NULL
            UNION ALL
            SELECT 1000000000, r.overstay_payment_intent, r.overstay_amount
             WHERE r.overstay_status = 'paid' AND r.overstay_payment_intent IS NOT NULL AND r.overstay_amount > 0
          ) s
      ) t
     WHERE t.amount > 0;

    SELECT coalesce(sum(a), 0) INTO v_left FROM unnest(v_amounts) a;
    v_want := coalesce(p_amount, v_left);
    IF v_want <= 0 OR v_want > v_left THEN
        RETURN QUERY SELECT 'exceeds'::text, NULL::uuid, NULL::bytea, v_left;
        RETURN;
    END IF;

    INSERT INTO refunds (id, reservation_id, amount, currency, status, idempotency_key, request_hash)
    VALUES (p_id, p_res, v_want, r.currency, 'pending', p_key, p_hash);
    FOR i IN 1 .. coalesce(array_length(v_intents, 1), 0) LOOP
        EXIT WHEN v_want = 0;
        v_take := least(v_amounts[i], v_want);
        INSERT INTO refund_parts (refund_id, part, payment_intent_id, amount)
        VALUES (p_id, i, v_intents[i], v_take);
        v_want := v_want - v_take;
    END LOOP;
    RETURN QUERY SELECT 'created'::text, p_id, NULL::bytea, v_left;
END $$;
