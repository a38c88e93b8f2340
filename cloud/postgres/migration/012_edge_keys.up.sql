-- The ed25519 public keys that sign a lot's gate events, one row per key an
-- edge agent registered. A lot may have several (two agents, or a replaced
-- one whose events are still in the broker); registering a key again is a
-- no-op, hence the key in the primary key.
CREATE TABLE IF NOT EXISTS edge_keys (
    lot_id      uuid NOT NULL REFERENCES lots (id),
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lot_id, public_key)
);
