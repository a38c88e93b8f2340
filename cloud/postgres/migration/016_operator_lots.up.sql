-- Operator lots (issue 15, part A): a lot an operator can close, reprice and
-- watch; who is inside it; a storage order of its gate events; refunds an
-- operator gives. IF NOT EXISTS throughout: the same columns are made by
-- another migration of this wave (018, which reads denied_alert_*), and a
-- re-run must be harmless.

-- A closed lot takes no new holds (parkgate_hold refuses them under the
-- lot's row lock); bookings made before stand.
ALTER TABLE lots ADD COLUMN IF NOT EXISTS closed boolean NOT NULL DEFAULT false;
-- The gate.denied_repeatedly threshold: this many denials of one plate
-- within the window.
ALTER TABLE lots ADD COLUMN IF NOT EXISTS denied_alert_count integer NOT NULL DEFAULT 5;
ALTER TABLE lots ADD COLUMN IF NOT EXISTS denied_alert_window interval NOT NULL DEFAULT '2 minutes';

-- Who is inside, from the edges' gate events as the ingest stores them, in
-- the event's own transaction: an entry that opened adds the plate, an exit
-- that opened removes it. Kept per plate rather than as a bare counter, so
-- a second entry of a plate already inside (a missed exit, an offline edge
-- replaying) counts once.
CREATE TABLE IF NOT EXISTS lot_presence (
    lot_id     uuid NOT NULL REFERENCES lots (id),
    plate      text NOT NULL,
    entered_at timestamptz NOT NULL,
    PRIMARY KEY (lot_id, plate)
);

-- Per lot: how many lot_presence rows it has (kept in step with them, so
-- the lot's page reads one row rather than counting), when that last
-- changed, and the last gate-event sequence number handed out. Bumping
-- event_seq locks the row until the event commits, so a lot's events commit
-- in the order of their numbers: a reader paging by "after" never skips one
-- that committed late.
CREATE TABLE IF NOT EXISTS lot_occupancy (
    lot_id     uuid PRIMARY KEY REFERENCES lots (id),
    inside     integer NOT NULL DEFAULT 0 CHECK (inside >= 0),
    updated_at timestamptz,
    event_seq  bigint NOT NULL DEFAULT 0
);

-- The order the cloud stored a lot's gate events in (see event_seq), and
-- the operator's note of a remote open, as the edge sent it.
ALTER TABLE gate_events ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE gate_events ADD COLUMN IF NOT EXISTS note text;
WITH numbered AS (
    SELECT event_id, row_number() OVER (PARTITION BY lot_id ORDER BY received_at, event_id) AS n
      FROM gate_events WHERE seq IS NULL
)
UPDATE gate_events g SET seq = numbered.n FROM numbered WHERE g.event_id = numbered.event_id;
INSERT INTO lot_occupancy (lot_id, event_seq)
SELECT lot_id, max(seq) FROM gate_events GROUP BY lot_id
ON CONFLICT (lot_id) DO UPDATE SET event_seq = greatest(lot_occupancy.event_seq, excluded.event_seq);
-- The operator's paging of a lot's events: a range scan after a seq.
CREATE UNIQUE INDEX IF NOT EXISTS gate_events_lot_seq_idx ON gate_events (lot_id, seq);

-- The operator's listing of a lot's reservations, newest first, paged by
-- (created_at, id): an index range scan from the cursor. Extensions' own
-- rows are not reservations and stay out of it.
CREATE INDEX IF NOT EXISTS reservations_lot_created_idx ON reservations (lot_id, created_at DESC, id DESC)
    WHERE extends_id IS NULL;

-- Refunds an operator gives (POST /v1/reservations/{id}/refund), one row
-- each, so their sum is the truth: with what a cancellation refunded, never
-- more than was paid (parkgate_refund decides, under the reservation's row
-- lock). A refund is split over the payments it comes from (the booking,
-- each paid extension, the overstay: each its own payment intent at the
-- provider), one part each, refunded under a key derived from the part.
CREATE TABLE IF NOT EXISTS refunds (
    id              uuid PRIMARY KEY,
    reservation_id  uuid NOT NULL REFERENCES reservations (id),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    -- failed: the provider refused it before any part went through; it
    -- no longer counts.
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    idempotency_key text,
    request_hash    bytea,
    -- The 200 answered, kept for a replay with the same key.
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reservation_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS refunds_pending_idx ON refunds (updated_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS refund_parts (
    refund_id          uuid NOT NULL REFERENCES refunds (id),
    part               integer NOT NULL,
    payment_intent_id  text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    provider_refund_id text,
    PRIMARY KEY (refund_id, part)
);
CREATE INDEX IF NOT EXISTS refund_parts_intent_idx ON refund_parts (payment_intent_id);

-- parkgate_hold checks the lot is open and still has the rate the price
-- was computed from; its old signature goes, or a call omitting the new
-- defaulted argument would be ambiguous.
DROP FUNCTION IF EXISTS parkgate_hold(uuid, uuid, text, text, timestamptz, timestamptz, interval,
    bigint, text, text, bytea, interval, bytea, integer, text, bytea);
