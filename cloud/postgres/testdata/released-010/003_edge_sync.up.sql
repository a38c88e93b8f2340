-- Edge sync: what the outbox relay, the catch-up endpoint and the gate-event
-- ingest (package cloud/relay) need beyond the core change log.
-- Written to apply cleanly over leftovers of an earlier run (IF NOT EXISTS,
-- OR REPLACE), as tests that drop and re-create the core tables need.

-- No NOTIFY trigger on the outbox: Postgres holds one global lock from a
-- notifying transaction's pre-commit to its commit record, which made every
-- hold and change of every lot commit one at a time (holds/s +40% without
-- it). The writer wakes its own replica's relay in process (Relay.Wake);
-- the other replicas find the rows at their poll.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS parkgate_outbox_notify();

-- Which relay replica publishes a lot's changes. A lease rather than a lock
-- held on a connection: a replica holds leases on many lots without holding as
-- many connections, and one that dies loses its leases when they expire.
-- Exclusivity only saves duplicate sends; order does not depend on it, because
-- every replica publishes a run that starts at the lot's first unpublished seq
-- and marks rows only after the broker acknowledged them.
CREATE TABLE IF NOT EXISTS relay_leases (
    lot_id     uuid PRIMARY KEY REFERENCES lots (id),
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_leases_owner_idx ON relay_leases (owner);

-- Credentials of edge agents: bearer tokens for the catch-up endpoint (and
-- broker passwords). Only a SHA-256 of each is kept, so a leaked table opens
-- no gate and lets nobody read a lot's changes. Several may be live per lot,
-- so a token is rotated by creating the new one before revoking the old.
CREATE TABLE IF NOT EXISTS edge_tokens (
    token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    lot_id       uuid NOT NULL REFERENCES lots (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS edge_tokens_lot_idx ON edge_tokens (lot_id);

-- Every gate event an edge reported, once by its event_id however often MQTT
-- redelivers it: the audit trail of who went in and out and why a gate opened
-- or not. reservation_id is text because it is what the edge said; only a
-- well-formed id of this lot's reservation moves a reservation.
CREATE TABLE IF NOT EXISTS gate_events (
    event_id         text PRIMARY KEY,
    lot_id           uuid NOT NULL REFERENCES lots (id),
    gate_id          text NOT NULL,
    direction        text NOT NULL CHECK (direction IN ('entry', 'exit')),
    kind             text NOT NULL,
    plate            text NOT NULL,
    confidence       double precision NOT NULL,
    decision         text NOT NULL CHECK (decision IN ('open', 'deny')),
    reason           text NOT NULL,
    reservation_id   text,
    fuzzy            boolean NOT NULL DEFAULT false,
    overstay_minutes integer NOT NULL DEFAULT 0,
    offline          boolean NOT NULL DEFAULT false,
    occurred_at      timestamptz NOT NULL,
    decided_in_us    bigint NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
-- Operators look at a lot's recent traffic, or one plate's.
CREATE INDEX IF NOT EXISTS gate_events_lot_time_idx ON gate_events (lot_id, occurred_at);
CREATE INDEX IF NOT EXISTS gate_events_plate_idx ON gate_events (lot_id, plate);

-- The last status each gate published (retained on the broker): online,
-- offline (its last will), and how far its sync has got.
CREATE TABLE IF NOT EXISTS gate_status (
    lot_id      uuid NOT NULL REFERENCES lots (id),
    gate_id     text NOT NULL,
    state       text NOT NULL,
    sync_seq    bigint,
    at          timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lot_id, gate_id)
);
