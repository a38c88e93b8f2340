-- parkgate_hold makes a PENDING hold in one round trip: lock the lot, claim
-- the idempotency key, expire overdue holds that overlap the window (so a
-- hold nobody paid for never blocks a booking, even before the expiry worker
-- gets to it), pick a free spot, insert, and record the change: a PENDING
-- hold's place among the lot's silent changes on its own row, since no
-- edge needs it before it is paid (migrations 021 and 027; its seq comes
-- back NULL), a free lot's CONFIRMED one in the lot's change log.
-- Outcomes: 'held'; 'key_exists' (nothing written; the caller reads the key);
-- 'unknown_spot' (p_spot names no spot of the lot); 'no_availability' (the
-- key now stores p_conflict_body as a 409, as a replay must return it).
--
-- With p_final_status, a hold that hands nothing to a payment provider is
-- final the moment it commits: its key is stored done in the hold's own
-- transaction, with no body; the body of a fresh hold is the reservation as
-- it was made, rebuilt from its row on a replay (booking.holdBody). A hold
-- with a Checkout Session still stores its body after the provider answers
-- (FinishHold).
--
-- A hold priced at 0 is on a free lot (a rate above 0 prices any window at
-- 1 or more): nothing to pay, so it is CONFIRMED as it is made, and its
-- change is an upsert the edge opens the gate for, as a paid confirmation's
-- (parkgate_confirm_holds).
--
-- p_token is the driver's access token: its hash goes on the reservation,
-- the token itself on the key, for a replay's 201 (see migration 013).
--
-- p_session_id and p_session_url are the Checkout Session made for this
-- hold before it (a calm lot's hold, booking.Service.hold): it goes on the
-- row as it is inserted, and with p_final_status the hold is final at once,
-- its body rebuilt from the row as a free hold's (migration 019).
--
-- A closed lot takes no hold: 'lot_closed', and the key is forgotten so a
-- retry after the lot reopens starts afresh. The check is here, under the
-- lot's row lock that PATCH /v1/lots/{id} takes to close it, so no cache
-- in front can let a hold through after the close has committed. p_rate is
-- the hourly rate the caller priced the window at: when the lot's rate is
-- another now (changed by its operator, read by this replica before),
-- 'rate_changed', nothing kept, and the caller prices again (migration 016).
--
-- The lot's row is locked FOR NO KEY UPDATE; every writer of its seq
-- locks it at least as strongly (an UPDATE of seq, parkgate_change, a
-- cancellation, a close), so holds and those writers still take turns:
-- an edge's check-in or check-out, which moves a reservation, among them.
-- But a transaction that only writes a row with a foreign key to the lot
-- (an edge's gate event that moves nothing, as a deny, and its gate
-- status, the relay's first lease, an alert) takes a key-share lock,
-- which neither waits for a hold nor holds one up. FOR UPDATE made those
-- queue behind a hot lot's holds, and its holds behind them (migration
-- 026).
--
-- With p_no_wait, a lot whose row another transaction has locked as above
-- (its holds, a payment's confirmation, a cancellation) is not waited for:
-- 'lot_locked', nothing written, and the caller makes the hold again
-- without it. The calm lots' holds that share one transaction
-- (booking.Service.writeCalmHold) ask it, so that one lot's contention, as
-- a surge on another replica, never holds up the others' (migration 023).
--
-- Why plan_cache_mode: PL/pgSQL plans a statement for its parameters' values
-- (a custom plan) five times, then keeps the generic plan only if it is
-- estimated no dearer. Once the tables had statistics, the spot query's
-- generic plan never was (its window's overlap is estimated blind), so every
-- hold planned the spot query, its subquery and the overdue read afresh:
-- 17% of Postgres' CPU in perf, for the plan it had the time before. The
-- generic plans are the index reads the statements are written for (the
-- lot's spots in id order, the lot's range index, a named spot's row).
-- Forced, the shipped binary on lots with a past held 8-60% more holds a
-- second, in four alternating A/B runs (README, Performance). Generic plans
-- are made per connection from the statistics of the moment, and remade at
-- each ANALYZE of their tables.
-- The signature before p_no_wait goes in the same transaction as this one
-- is made, not by a migration of its own: no moment without the function,
-- and a binary from before migrations stopped re-applying older functions
-- (ErrSchemaNewer), restarted while this one rolls out, may have made it
-- again; beside this one it would make that binary's calls ambiguous.
DROP FUNCTION IF EXISTS parkgate_hold(uuid, uuid, text, text, timestamptz, timestamptz, interval,
    bigint, text, text, bytea, interval, bytea, integer, text, bytea, bigint, text, text);

CREATE OR REPLACE FUNCTION parkgate_hold(
    p_id uuid, p_lot uuid, p_spot text, p_plate text,
    p_starts timestamptz, p_ends timestamptz, p_hold interval,
    p_price bigint, p_currency text,
    p_key text, p_hash bytea, p_lease interval, p_conflict_body bytea,
    p_final_status integer DEFAULT NULL,
    p_token text DEFAULT NULL, p_token_hash bytea DEFAULT NULL,
    p_rate bigint DEFAULT NULL,
    p_session_id text DEFAULT NULL, p_session_url text DEFAULT NULL,
    p_no_wait boolean DEFAULT false)
RETURNS TABLE (outcome text, spot_label text, hold_expires_at timestamptz, created_at timestamptz, seq bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_seq   bigint;
    v_spot  bigint;
    v_label text;
    v_status text := CASE WHEN p_price = 0 THEN 'CONFIRMED' ELSE 'PENDING' END;
    v_closed boolean;
    v_rate  bigint;
    v_currency text;
BEGIN
    IF p_no_wait THEN
        SELECT l.seq, l.closed, l.hourly_rate_amount, l.currency INTO v_seq, v_closed, v_rate, v_currency
          FROM lots l WHERE l.id = p_lot FOR NO KEY UPDATE SKIP LOCKED;
    ELSE
        SELECT l.seq, l.closed, l.hourly_rate_amount, l.currency INTO v_seq, v_closed, v_rate, v_currency
          FROM lots l WHERE l.id = p_lot FOR NO KEY UPDATE;
    END IF;
    IF NOT FOUND THEN
        IF p_no_wait AND EXISTS (SELECT 1 FROM lots l WHERE l.id = p_lot) THEN
            RETURN QUERY SELECT 'lot_locked'::text, NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::bigint;
            RETURN;
        END IF;
        RAISE EXCEPTION 'lot % not found', p_lot USING ERRCODE = 'foreign_key_violation';
    END IF;

    IF p_key IS NOT NULL THEN
        -- With p_final_status the key is done once this commits: no lease,
        -- and the status marks the body as the reservation itself (NULL).
        INSERT INTO idempotency_keys (key, request_hash, reservation_id, locked_until, response_status, expires_at,
                                      access_token)
        VALUES (p_key, p_hash, p_id, CASE WHEN p_final_status IS NULL THEN now() + p_lease END,
                p_final_status, now() + interval '24 hours', p_token)
        ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'key_exists'::text, NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::bigint;
            RETURN;
        END IF;
    END IF;

    IF v_closed OR (p_rate IS NOT NULL AND (v_rate <> p_rate OR v_currency <> p_currency)) THEN
        DELETE FROM idempotency_keys k WHERE k.key = p_key;
        RETURN QUERY SELECT CASE WHEN v_closed THEN 'lot_closed' ELSE 'rate_changed' END,
               NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;

    -- No edge ever held a PENDING hold: its end is silent (migration 021).
    -- Asked first with a read: nearly always there is none, and an UPDATE
    -- that changes nothing still sets up its write (every index of
    -- reservations opened) and the INSERT it feeds: 2-14% of Postgres' CPU
    -- per hold (pgbench of this function, alternating, 4 rounds).
    IF EXISTS (SELECT 1 FROM reservations x
                WHERE x.lot_id = p_lot AND x.status = 'PENDING' AND x.hold_expires_at <= now()
                  AND tstzrange(x.starts_at, x.ends_at) && tstzrange(p_starts, p_ends)) THEN
        WITH expired AS (
            UPDATE reservations x SET status = 'EXPIRED', updated_at = now()
             WHERE x.lot_id = p_lot AND x.status = 'PENDING' AND x.hold_expires_at <= now()
               AND tstzrange(x.starts_at, x.ends_at) && tstzrange(p_starts, p_ends)
            RETURNING x.id, x.plate, x.starts_at, x.ends_at
        )
        INSERT INTO silent_changes (lot_id, after_seq, reservation_id, status, plate, starts_at, ends_at)
        SELECT p_lot, v_seq, e.id, 'EXPIRED', e.plate, e.starts_at, e.ends_at
          FROM expired e ORDER BY e.id;
    END IF;

    -- Any spot: the taken spots are read once, by one scan of the lot's
    -- range index, rather than probed spot by spot (3 ms for 50 spots), and
    -- the lot's spots walked in id order to the first free one (migration
    -- 022). A named spot: found by its label and probed alone. Two statements, not
    -- one with "p_spot IS NULL OR", so that each generic plan is the right
    -- one for its case (see plan_cache_mode above).
    IF p_spot IS NULL THEN
        SELECT s.id, s.label INTO v_spot, v_label
          FROM spots s
         WHERE s.lot_id = p_lot
           AND s.id NOT IN (
               SELECT x.spot_id FROM reservations x
                WHERE x.lot_id = p_lot
                  AND x.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN')
                  AND tstzrange(x.starts_at, x.ends_at) && tstzrange(p_starts, p_ends))
         ORDER BY s.id
         LIMIT 1;
    ELSE
        SELECT s.id, s.label INTO v_spot, v_label
          FROM spots s
         WHERE s.lot_id = p_lot AND s.label = p_spot
           AND NOT EXISTS (
               SELECT 1 FROM reservations x
                WHERE x.spot_id = s.id
                  AND x.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN')
                  AND tstzrange(x.starts_at, x.ends_at) && tstzrange(p_starts, p_ends));
    END IF;

    IF v_spot IS NULL THEN
        IF p_spot IS NOT NULL AND NOT EXISTS (SELECT 1 FROM spots s WHERE s.lot_id = p_lot AND s.label = p_spot) THEN
            DELETE FROM idempotency_keys k WHERE k.key = p_key;
            RETURN QUERY SELECT 'unknown_spot'::text, NULL::text, NULL::timestamptz, NULL::timestamptz, v_seq;
            RETURN;
        END IF;
        UPDATE idempotency_keys k SET reservation_id = NULL, locked_until = NULL,
               response_status = 409, response_body = p_conflict_body
         WHERE k.key = p_key;
        RETURN QUERY SELECT 'no_availability'::text, NULL::text, NULL::timestamptz, NULL::timestamptz, v_seq;
        RETURN;
    END IF;

    -- A PENDING hold is nothing for the edges until it is paid (migration
    -- 021): the lot's seq stays, and the hold reports none. Its place in
    -- the lot's history goes on its row, drawn from silent_changes'
    -- sequence under the lot's lock as a silent change's id (migration
    -- 027; CASE calls nextval only for it).
    INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status,
                              hold_expires_at, price_amount, currency, access_token_hash,
                              checkout_session_id, checkout_url, silent_after_seq, silent_id)
    VALUES (p_id, p_lot, v_spot, p_plate, p_starts, p_ends, v_status,
            now() + p_hold, p_price, p_currency, p_token_hash,
            p_session_id, p_session_url,
            CASE WHEN v_status = 'PENDING' THEN v_seq END,
            CASE WHEN v_status = 'PENDING' THEN nextval('silent_changes_id_seq') END);
    IF v_status = 'PENDING' THEN
        RETURN QUERY SELECT 'held'::text, v_label, now() + p_hold, now(), NULL::bigint;
        RETURN;
    END IF;
    v_seq := v_seq + 1;
    INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
    VALUES (p_lot, v_seq, p_id, 'upsert', v_status, p_plate, p_starts, p_ends);
    UPDATE lots l SET seq = v_seq WHERE l.id = p_lot;
    RETURN QUERY SELECT 'held'::text, v_label, now() + p_hold, now(), v_seq;
END $$;
