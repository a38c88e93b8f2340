-- Alerts (issue 15): operators' webhook endpoints, and an outbox of alert
-- events fanned out to a delivery row per subscribed endpoint in the
-- transaction of the fact they report (parkgate_alert), delivered by
-- parkcloud's deliverer until a 2xx or three days.

-- The deny threshold of gate.denied_repeatedly, per lot. Migration 016 makes
-- the same columns (the lot's PATCH sets them); whichever runs first adds
-- them.
ALTER TABLE lots ADD COLUMN IF NOT EXISTS denied_alert_count integer NOT NULL DEFAULT 5;
ALTER TABLE lots ADD COLUMN IF NOT EXISTS denied_alert_window interval NOT NULL DEFAULT '2 minutes';

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id         uuid PRIMARY KEY,
    url        text NOT NULL,
    events     text[] NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS alert_events (
    id      text PRIMARY KEY,
    type    text NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    data    jsonb NOT NULL
);

-- One row per (event, endpoint) until it is delivered or given up. The row
-- is its own lease: a deliverer claims it by moving next_attempt_at past
-- the attempt, so a deliverer that dies mid-attempt leaves it due again.
-- Deleting the endpoint deletes what it still had pending.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    event_id        text NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS alert_deliveries_endpoint_idx ON alert_deliveries (endpoint_id);

-- The repeated-deny detector's memory per gate: whether it has fired for the
-- current burst, and the newest deny, so a quiet window re-arms it.
CREATE TABLE IF NOT EXISTS gate_deny_alerts (
    lot_id       uuid NOT NULL REFERENCES lots (id),
    gate_id      text NOT NULL,
    fired        boolean NOT NULL DEFAULT false,
    last_deny_at timestamptz NOT NULL,
    PRIMARY KEY (lot_id, gate_id)
);
-- Counting a gate's denies in the lot's window.
CREATE INDEX IF NOT EXISTS gate_events_deny_idx ON gate_events (lot_id, gate_id, occurred_at) WHERE decision = 'deny';

-- What GET /v1/lots/{id}/edges shows: when the cloud last heard from the gate
-- (a status message or a gate event).
ALTER TABLE gate_status ADD COLUMN IF NOT EXISTS last_seen timestamptz;
