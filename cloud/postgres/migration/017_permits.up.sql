-- Permits (issue 15): plates a lot lets in for a period without a booking
-- (monthly parkers, staff), and the lot's change log carrying them and the
-- operator's presence resets to the edges, in the one seq order of the lot.

CREATE TABLE IF NOT EXISTS permits (
    id          uuid PRIMARY KEY,
    lot_id      uuid NOT NULL REFERENCES lots (id),
    plate       text NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_until timestamptz NOT NULL,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A revoked permit is kept for the record (who was let in on what) and
    -- no longer listed or synced.
    revoked_at  timestamptz,
    CHECK (valid_from < valid_until)
);
-- The operator's list: a lot's live permits that have not ended.
CREATE INDEX IF NOT EXISTS permits_lot_live_idx ON permits (lot_id, valid_until) WHERE revoked_at IS NULL;

-- What a change-log row is about: '' a reservation (every row before this
-- migration), 'permit' or 'presence_reset' (protocol.ChangeKind). The other
-- kinds reuse the reservation's columns rather than add their own: a
-- permit's id, plate and validity go in reservation_id, plate, starts_at and
-- ends_at; a reset's command id, plate and issue time in reservation_id,
-- plate and starts_at = ends_at. Every reader of the log then keeps working
-- unchanged, and those that mean reservations only filter on kind = ''.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT ''
    CHECK (kind IN ('', 'permit', 'presence_reset'));
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_op_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_op_check CHECK (op IN ('upsert', 'delete', 'reset'));
