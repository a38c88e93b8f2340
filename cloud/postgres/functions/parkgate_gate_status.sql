-- parkgate_gate_status records a gate's retained status as the ingest
-- received it and returns the transition it made: 'online' (it was offline),
-- 'offline' (it was online), or NULL (the first status of the gate, a
-- repeat, or a stale one), with an edge.online / edge.offline alert in the
-- same transaction. Every replica records every status (the subscription
-- is not shared), so only the first to change the row raises the alert.
--
-- Order is by the edge's own clock (p_at), so a retained message replayed
-- at a cloud restart or a slow replica's late copy changes nothing. The one
-- exception is the agent's last will: the broker publishes it when the
-- connection dies, but its payload (and at) was fixed when the agent
-- connected, before every "online" of that connection. A live (not
-- retained) offline over an online therefore applies whatever its at says,
-- and keeps the stored at, so the agent's next "online" is newer again;
-- but only when it reached the cloud (p_received, taken as the message
-- arrived, before the ingest's concurrent handlers could reorder it) after
-- the stored online did: the will of a dead connection handled after the
-- next connection's online must not mark the gate offline.
-- p_seq NULL keeps the gate's last known applied seq.
CREATE OR REPLACE FUNCTION parkgate_gate_status(p_lot uuid, p_gate text, p_state text, p_seq bigint,
    p_at timestamptz, p_live boolean, p_received timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g gate_status%ROWTYPE;
BEGIN
    INSERT INTO gate_status AS s (lot_id, gate_id, state, sync_seq, at, received_at, last_seen)
    VALUES (p_lot, p_gate, p_state, p_seq, p_at, p_received, CASE WHEN p_state = 'online' THEN now() END)
    ON CONFLICT (lot_id, gate_id) DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO g FROM gate_status s WHERE s.lot_id = p_lot AND s.gate_id = p_gate FOR UPDATE;
    IF p_at > g.at THEN
        UPDATE gate_status s SET state = p_state, sync_seq = coalesce(p_seq, g.sync_seq), at = p_at,
               received_at = greatest(g.received_at, p_received),
               last_seen = CASE WHEN p_state = 'online' THEN now() ELSE g.last_seen END
         WHERE s.lot_id = p_lot AND s.gate_id = p_gate;
    ELSIF p_state = 'offline' AND p_live AND g.state = 'online' AND p_received >= g.received_at THEN
        UPDATE gate_status s SET state = p_state, received_at = p_received
         WHERE s.lot_id = p_lot AND s.gate_id = p_gate;
    ELSE
        RETURN NULL;
    END IF;
    IF g.state = p_state THEN
        RETURN NULL;
    END IF;
    PERFORM parkgate_alert('edge.' || p_state, jsonb_build_object(
        'lot_id', p_lot, 'gate_id', p_gate, 'status', p_state,
        'applied_seq', coalesce(p_seq, g.sync_seq),
        'last_seen', parkgate_rfc3339(CASE WHEN p_state = 'online' THEN now() ELSE g.last_seen END)));
    RETURN p_state;
END $$;
