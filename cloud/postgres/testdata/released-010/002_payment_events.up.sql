-- The payment-event inbox: the Postgres backend of the payment-event bus
-- (cloud/bus/pgbus). The webhook inserts each verified Stripe event once,
-- by its event id, and answers Stripe; workers claim events from here with
-- FOR UPDATE SKIP LOCKED under a lease and handle them off the request path.
--
-- IF NOT EXISTS throughout: a re-run must be harmless (the migration test
-- drops schema_migrations and migrates again over the existing table).

CREATE TABLE IF NOT EXISTS payment_events (
    -- Stripe event id; the primary key is what makes a redelivered webhook
    -- a no-op (INSERT ... ON CONFLICT (id) DO NOTHING).
    id           text PRIMARY KEY,
    -- Ordering key: reservation id, or Checkout Session id when the
    -- reservation is not known. One key's events are handled one at a time,
    -- oldest first.
    key          text NOT NULL,
    type         text NOT NULL,
    -- The verified body byte for byte (bytea, not jsonb, which would
    -- reorder keys and drop whitespace); query it with
    -- convert_from(payload, 'UTF8')::jsonb.
    payload      bytea NOT NULL,
    -- Stripe's creation time of the event: the first ordering criterion.
    created_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- Arrival order, the tie-break for events Stripe created in the same
    -- second (its timestamps have one-second resolution).
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    -- Deliveries so far, bumped by each claim; it doubles as the claim's
    -- fencing token, so a worker whose lease ran out cannot finish or
    -- reschedule a later claim of the same event.
    attempts     integer NOT NULL DEFAULT 0,
    -- Not claimable before this: the backoff after a handler error.
    available_at timestamptz NOT NULL DEFAULT now(),
    -- The lease of the worker handling the event, renewed while its handler
    -- runs; once it has passed (the worker died) the event is claimable again.
    locked_until timestamptz,
    processed_at timestamptz,
    last_error   text
);

-- The claim query's scan: unprocessed events, oldest first. Processed rows
-- leave the index, so it stays as small as the backlog.
CREATE INDEX IF NOT EXISTS payment_events_pending_idx
    ON payment_events (created_at, seq) WHERE processed_at IS NULL;
-- The claim query's per-key check: is an older event of this key still
-- unprocessed, or is one of its events leased right now?
CREATE INDEX IF NOT EXISTS payment_events_key_pending_idx
    ON payment_events (key, created_at, seq) WHERE processed_at IS NULL;
-- The purge of old processed events.
CREATE INDEX IF NOT EXISTS payment_events_processed_idx
    ON payment_events (processed_at) WHERE processed_at IS NOT NULL;
