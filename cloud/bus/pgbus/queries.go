package pgbus

// The SQL of the inbox, kept together. Durations travel as microseconds
// (bigint) so no driver-side interval encoding is involved.

// Channel is the NOTIFY channel Publish signals on. Channels are
// database-wide, so buses in other schemas of one database wake each other
// needlessly, which costs one empty claim.
const Channel = "parkgate_payment_events"

// publishSQL records a batch of events: one statement, so one round trip
// and one commit for all of them. It returns the ids that were new. The
// rows go in in the order given, so arrival order (seq) follows it. It does
// not NOTIFY: Postgres serializes the commits of notifying transactions (a
// database-wide lock taken at commit), which measured here halved publish
// throughput; Publish notifies afterwards instead, coalesced (see notify).
const publishSQL = `
INSERT INTO payment_events (id, key, type, payload, created_at)
SELECT u.id, u.key, u.type, u.payload, coalesce(u.created_at, now())
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[])
       WITH ORDINALITY AS u (id, key, type, payload, created_at, ord)
 ORDER BY u.ord
ON CONFLICT (id) DO NOTHING
RETURNING id`

// notifySQL wakes the listeners of every replica. The payload is empty:
// one notification stands for any number of new events.
const notifySQL = `SELECT pg_notify('` + Channel + `', '')`

// claimSQL leases up to $2 of the oldest claimable events, one key's
// events one at a time; parkgate_claim_events (cloud/postgres/functions) says what
// claimable means and why it is a function.
const claimSQL = `SELECT id, key, type, payload, created_at, attempts FROM parkgate_claim_events($1, $2)`

// asyncSQL makes the rest of its implicit transaction commit without
// waiting for the WAL flush. Lease renewals and outcomes run so: should
// Postgres crash and lose the last of them, an event is merely delivered
// again, which handlers are built for, while every handler's own commit
// stays durable — and the WAL is one sequence, so a handler commit that
// reached disk took everything before it along. Claims do not: see claim.
const asyncSQL = `SELECT set_config('synchronous_commit', 'off', true)`

// renewSQL extends a lease still held (attempts unchanged since the claim).
const renewSQL = `
UPDATE payment_events
   SET locked_until = now() + $3::bigint * interval '1 microsecond'
 WHERE id = $1 AND attempts = $2 AND processed_at IS NULL`

// doneSQL marks claimed events processed: $1 their ids, $2 each claim's
// attempts, which fence off a claim whose lease was lost. It returns the
// claims it marked.
const doneSQL = `
UPDATE payment_events e
   SET processed_at = now(), locked_until = NULL, last_error = NULL
  FROM unnest($1::text[], $2::integer[]) AS d (id, attempts)
 WHERE e.id = d.id AND e.attempts = d.attempts AND e.processed_at IS NULL
RETURNING e.id, e.attempts`

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
