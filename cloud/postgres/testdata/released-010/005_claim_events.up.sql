-- The payment bus's claim as a function over an explicit cursor. The plain
-- UPDATE ... WHERE id IN (SELECT ... ORDER BY ... LIMIT n FOR UPDATE SKIP
-- LOCKED) it replaces was planned for all matching rows: with the inbox
-- growing faster than statistics follow (a webhook flood), Postgres chose
-- to read every pending event, test each against its key and sort them,
-- 5 ms per claim at a backlog of 3,000, and the claim became the busiest
-- statement of the flood. A declared cursor is planned for its first rows
-- (cursor_tuple_fraction), which is the walk down the pending index in
-- order that stops after n events: 0.3 ms at the same backlog.
--
-- Claimable: not processed, out of its backoff, not leased (or its lease
-- ran out), and no other event of its key either older and unprocessed or
-- leased right now. The second half keeps one key serial even when an older
-- event arrives late, after a newer one was claimed, and means one claim
-- never returns two events of one key. SKIP LOCKED lets concurrent
-- claimers pass over each other's candidates instead of queueing on them.
-- attempts is bumped here, so it counts deliveries and fences later updates
-- of this claim.
CREATE OR REPLACE FUNCTION parkgate_claim_events(p_lease_us bigint, p_limit integer)
RETURNS TABLE (id text, key text, type text, payload bytea, created_at timestamptz, attempts integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    candidates CURSOR FOR
        SELECT e.id
          FROM payment_events e
         WHERE e.processed_at IS NULL
           AND e.available_at <= now()
           AND (e.locked_until IS NULL OR e.locked_until <= now())
           AND NOT EXISTS (
               SELECT 1
                 FROM payment_events o
                WHERE o.key = e.key
                  AND o.processed_at IS NULL
                  AND o.id <> e.id
                  AND ((o.created_at, o.seq) < (e.created_at, e.seq) OR o.locked_until > now()))
         ORDER BY e.created_at, e.seq
           FOR UPDATE SKIP LOCKED;
    v_id text;
    n    integer := 0;
BEGIN
    OPEN candidates;
    WHILE n < p_limit LOOP
        FETCH candidates INTO v_id;
        EXIT WHEN NOT FOUND;
        RETURN QUERY
        UPDATE payment_events e
           SET attempts = e.attempts + 1,
               locked_until = now() + p_lease_us * interval '1 microsecond'
         WHERE e.id = v_id
        RETURNING e.id, e.key, e.type, e.payload, e.created_at, e.attempts;
        n := n + 1;
    END LOOP;
    CLOSE candidates;
END $$;
