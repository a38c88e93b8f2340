-- A claim plan that stays right whatever the statistics say. A fresh
-- deployment, or a queue table analyzed while it was nearly empty, has
-- statistics that call a table of thousands of rows "one row"; PL/pgSQL
-- caches, per connection, plans that are only fine for one row and keeps
-- them until the next ANALYZE. Seen in the webhook benchmark with the inbox
-- analyzed before a flood: webhook -> CONFIRMED p99 2.4-4.1 s at 2,000/s.

-- The claim walks the pending index in arrival order and stops after n
-- claimable events (see 005). That plan wins only when the planner knows
-- the backlog is large; with statistics taken while the inbox was nearly
-- empty it reads every pending event, tests each, and sorts them: work that
-- grows with the backlog, on every claim, exactly during a flood (5.4 ms a
-- claim at a backlog of 3,000, against 1.2 ms for the walk). Worse, the
-- "no older or leased event of the same key" anti-join was planned as a
-- full scan of the pending events for each candidate: quadratic.
--
-- So the function is planned without sorts, bitmap or sequential scans
-- (the walk is the only plan left), and the key test is kept a correlated
-- subquery (OFFSET 0 stops it becoming a join), which can only be run as
-- a lookup of the candidate's key in payment_events_key_pending_idx.
-- Plans with a disabled node carry a huge cost, which would cross
-- jit_above_cost and compile each claim: no JIT here.
CREATE OR REPLACE FUNCTION parkgate_claim_events(p_lease_us bigint, p_limit integer)
RETURNS TABLE (id text, key text, type text, payload bytea, created_at timestamptz, attempts integer)
LANGUAGE plpgsql
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
SET jit = off
AS $$
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
                  AND ((o.created_at, o.seq) < (e.created_at, e.seq) OR o.locked_until > now())
               OFFSET 0)
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
