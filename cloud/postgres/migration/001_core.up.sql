-- Core schema: lots, spots, reservations, idempotency keys and the per-lot
-- change log (outbox) that edges sync by.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE lots (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    latitude           double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude          double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    time_zone          text NOT NULL,
    hourly_rate_amount bigint NOT NULL CHECK (hourly_rate_amount >= 0),
    currency           text NOT NULL,
    total_spots        integer NOT NULL CHECK (total_spots > 0),
    -- Last sequence number handed out in this lot's change log. Bumped in the
    -- same transaction as each change, which makes the numbers gap-free, and
    -- its row lock orders every writer of one lot (see parkgate_hold).
    seq                bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now()
);
-- Search filters a bounding box first, then measures exact distances.
CREATE INDEX lots_location_idx ON lots (latitude, longitude);

CREATE TABLE spots (
    id     bigserial PRIMARY KEY,
    lot_id uuid NOT NULL REFERENCES lots (id),
    label  text NOT NULL,
    UNIQUE (lot_id, label)
);

CREATE TABLE reservations (
    id                  uuid PRIMARY KEY,
    lot_id              uuid NOT NULL REFERENCES lots (id),
    spot_id             bigint NOT NULL REFERENCES spots (id),
    plate               text NOT NULL,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    status              text NOT NULL CHECK (status IN
        ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'COMPLETED', 'EXPIRED', 'CANCELLED', 'REFUNDED')),
    hold_expires_at     timestamptz NOT NULL,
    price_amount        bigint NOT NULL,
    currency            text NOT NULL,
    checkout_session_id text UNIQUE,
    checkout_url        text,
    -- Set once the Checkout Session of an ended hold has been expired at
    -- Stripe, so the worker that does it knows what is left.
    session_closed_at   timestamptz,
    payment_intent_id   text,
    refund_id           text,
    checked_in_at       timestamptz,
    checked_out_at      timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at),
    -- The rule this product exists for: no two active reservations of one
    -- spot overlap. Half-open ranges, so back-to-back bookings fit.
    CONSTRAINT reservations_no_overlap EXCLUDE USING gist (
        spot_id WITH =,
        tstzrange(starts_at, ends_at) WITH &&
    ) WHERE (status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN'))
);
-- Availability (search, holds) asks which active reservations of a lot
-- overlap a window. Neither "ends after the start" nor "starts before the
-- end" is selective alone (a lot's future bookings, or all its past ones);
-- the range overlap is, and GiST answers it directly.
CREATE INDEX reservations_lot_range_idx ON reservations
    USING gist (lot_id, tstzrange(starts_at, ends_at))
    WHERE status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN');
-- The hold-expiry worker's queue.
CREATE INDEX reservations_pending_hold_idx ON reservations (hold_expires_at)
    WHERE status = 'PENDING';
-- Sessions still to be expired at Stripe after their hold ended.
CREATE INDEX reservations_session_open_idx ON reservations (updated_at)
    WHERE checkout_session_id IS NOT NULL AND session_closed_at IS NULL
      AND status IN ('EXPIRED', 'CANCELLED');
CREATE INDEX reservations_plate_idx ON reservations (lot_id, plate);

-- Idempotency keys of POST /v1/reservations. Written in the same transaction
-- as the reservation, so a stored key always has its reservation and the other
-- way round. locked_until is the lease of a request in flight: a retry during
-- it gets 409, a retry after it (the first caller crashed) takes over.
CREATE TABLE idempotency_keys (
    key             text PRIMARY KEY,
    request_hash    bytea NOT NULL,
    reservation_id  uuid,
    locked_until    timestamptz,
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- The per-lot change log. Every state change of a reservation adds a row with
-- the lot's next seq in its own transaction; the relay publishes rows and
-- stamps published_at; edges catch up by reading it after their last seq.
CREATE TABLE outbox (
    lot_id         uuid NOT NULL REFERENCES lots (id),
    seq            bigint NOT NULL,
    reservation_id uuid NOT NULL,
    op             text NOT NULL CHECK (op IN ('upsert', 'delete')),
    status         text NOT NULL,
    plate          text NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    PRIMARY KEY (lot_id, seq)
);
CREATE INDEX outbox_unpublished_idx ON outbox (lot_id, seq) WHERE published_at IS NULL;

-- The functions over these tables (parkgate_hold, parkgate_change, ...) are
-- not here: each has one current source file in ../functions, applied after
-- the migrations on every migrate.
