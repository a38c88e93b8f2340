package pgbus

// The SQL of the inbox, kept together. Durations travel as microseconds
// (bigint) so no driver-side interval encoding is involved.

// Channel is the NOTIFY channel Publish signals on. Channels are
// database-wide, so buses in other schemas of one database wake each other
// needlessly, which costs one empty claim.
const Channel = "parkgate_payment_events"

// publishSQL records an event: one statement, so one round trip and one
// implicit transaction. It returns a row only when the id was new. It does
// not NOTIFY: Postgres serializes the commits of notifying transactions (a
// database-wide lock taken at commit), which measured here halved publish
// throughput; Publish notifies afterwards instead, coalesced (see notify).
const publishSQL = `
INSERT INTO payment_events (id, key, type, payload, created_at)
VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()))
ON CONFLICT (id) DO NOTHING
RETURNING true`

// notifySQL wakes the listeners of every replica. The payload is empty:
// one notification stands for any number of new events.
const notifySQL = `SELECT pg_notify('` + Channel + `', '')`

// claimSQL leases the oldest claimable event. Claimable: not processed, out
// of its backoff, not leased (or its lease ran out), and no other event of
// its key is either older and unprocessed or leased right now — the second
// half keeps one key serial even when an older event arrives late, after a
// newer one was claimed. SKIP LOCKED lets concurrent workers pass over each
// other's candidates instead of queueing on them. attempts is bumped here,
// so it counts deliveries and fences later updates to this claim.
const claimSQL = `
UPDATE payment_events e
   SET attempts = e.attempts + 1,
       locked_until = now() + $1::bigint * interval '1 microsecond'
 WHERE e.id = (
       SELECT c.id
         FROM payment_events c
        WHERE c.processed_at IS NULL
          AND c.available_at <= now()
          AND (c.locked_until IS NULL OR c.locked_until <= now())
          AND NOT EXISTS (
              SELECT 1
                FROM payment_events o
               WHERE o.key = c.key
                 AND o.processed_at IS NULL
                 AND o.id <> c.id
                 AND ((o.created_at, o.seq) < (c.created_at, c.seq) OR o.locked_until > now()))
        ORDER BY c.created_at, c.seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
RETURNING e.id, e.key, e.type, e.payload, e.created_at, e.attempts`

// renewSQL extends a lease still held (attempts unchanged since the claim).
const renewSQL = `
UPDATE payment_events
   SET locked_until = now() + $3::bigint * interval '1 microsecond'
 WHERE id = $1 AND attempts = $2 AND processed_at IS NULL`

// doneSQL marks a claimed event processed.
const doneSQL = `
UPDATE payment_events
   SET processed_at = now(), locked_until = NULL, last_error = NULL
 WHERE id = $1 AND attempts = $2 AND processed_at IS NULL`

// retrySQL gives a claimed event back, claimable again after a delay (the
// backoff after an error, or none when the consumer stops mid-event).
const retrySQL = `
UPDATE payment_events
   SET locked_until = NULL,
       available_at = now() + $3::bigint * interval '1 microsecond',
       last_error = $4
 WHERE id = $1 AND attempts = $2 AND processed_at IS NULL`

// purgeSQL deletes one batch of events processed before the cutoff; Purge
// repeats it so no single statement holds many row locks or a long
// transaction.
const purgeSQL = `
DELETE FROM payment_events p
 USING (SELECT id FROM payment_events
         WHERE processed_at < now() - $1::bigint * interval '1 microsecond'
         LIMIT $2) old
 WHERE p.id = old.id`

// depthSQL counts unprocessed events, capped so that a huge backlog costs a
// bounded scan of the partial index.
const depthSQL = `
SELECT count(*) FROM (SELECT 1 FROM payment_events WHERE processed_at IS NULL LIMIT 100000) q`

// checkSQL fails when the table is missing, so Run can say so at once.
const checkSQL = `SELECT 1 FROM payment_events LIMIT 0`
