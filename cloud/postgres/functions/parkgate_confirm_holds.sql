-- parkgate_confirm_holds confirms several paid holds in one statement and
-- one commit: each reservation still PENDING whose hold stands at the given
-- time becomes CONFIRMED, with its payment intent. Returns a row for each
-- reservation it changed; duplicates in the batch are confirmed once,
-- unknown ids ignored, and every lot's log stays gap-free.
--
-- The batch is one statement over all its reservations rather than a call
-- of parkgate_change for each: one update of the reservations, one update
-- per lot of the lot's sequence (by the number of its confirmations), one
-- insert into the change log, numbered per lot with row_number. The commit
-- is most of the cost of a confirmation, so batching is the point.
--
-- The lots are locked first, all of them, in lot order: a single-lot
-- writer (a hold) then never holds a lot this batch waits for while
-- waiting on a reservation this batch changed, and two batches cannot
-- deadlock. The store writes one batch at a time (postgres.New). FOR NO
-- KEY UPDATE, as every writer of a lot's seq (migration 026): a row keyed
-- to the lot (a denied plate's event, a gate's status) goes in meanwhile.
--
-- An extension's row (extends_id set) is never confirmed here: its payment
-- is merged into its reservation by parkgate_extend.
--
-- CONFIRMED opens the gate (protocol.Status.OpensGate), hence 'upsert'.
--
-- Generic plans, as parkgate_hold's: with an array parameter, the generic
-- plan of the lots' lock is estimated for ten ids and loses to the plan for
-- the batch's actual one, so every confirmation planned both statements
-- afresh. The generic plans are the primary-key lookups the statements are
-- written for, whatever the batch's size. Forced, confirmations went from
-- 730-933 to 1,035-1,374 a second (pgbench of this function, 8 clients, one
-- hold each, 124,000 reservations analyzed, 3 alternating rounds).
CREATE OR REPLACE FUNCTION parkgate_confirm_holds(p_ids uuid[], p_intents text[], p_ats timestamptz[])
RETURNS TABLE (id uuid, lot_id uuid, seq bigint) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM lots l
     WHERE l.id IN (SELECT x.lot_id FROM reservations x WHERE x.id = ANY (p_ids))
     ORDER BY l.id
       FOR NO KEY UPDATE;

    RETURN QUERY
    WITH req AS (
        SELECT DISTINCT ON (u.rid) u.rid, u.intent, u.at
          FROM unnest(p_ids, p_intents, p_ats) WITH ORDINALITY AS u (rid, intent, at, ord)
         ORDER BY u.rid, u.ord
    ), changed AS (
        UPDATE reservations x
           SET status = 'CONFIRMED', updated_at = now(),
               payment_intent_id = coalesce(nullif(q.intent, ''), x.payment_intent_id)
          FROM req q
         WHERE x.id = q.rid AND x.status = 'PENDING' AND x.extends_id IS NULL
           AND (q.at IS NULL OR x.hold_expires_at > q.at)
        RETURNING x.id, x.lot_id, x.plate, x.starts_at, x.ends_at
    ), counted AS (
        SELECT c.lot_id, count(*) AS n FROM changed c GROUP BY c.lot_id
    ), bumped AS (
        UPDATE lots l SET seq = l.seq + k.n
          FROM counted k
         WHERE l.id = k.lot_id
        RETURNING l.id, l.seq - k.n AS base
    ), logged AS (
        INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
        SELECT c.lot_id, b.base + row_number() OVER (PARTITION BY c.lot_id ORDER BY c.id),
               c.id, 'upsert', 'CONFIRMED', c.plate, c.starts_at, c.ends_at
          FROM changed c JOIN bumped b ON b.id = c.lot_id
        RETURNING outbox.reservation_id, outbox.lot_id, outbox.seq
    )
    SELECT g.reservation_id, g.lot_id, g.seq FROM logged g;
END $$;
