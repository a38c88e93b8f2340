-- parkgate_gate_denied is called by the ingest, in a new deny event's own
-- transaction, after storing it: when the gate's denies within the lot's
-- denied_alert_window (counted by when they happened at the gate, up to
-- this one) reach denied_alert_count, it raises one gate.denied_repeatedly
-- alert and returns its count. It does not fire again for the same burst:
-- only once a whole window has passed without a deny at the gate (a quiet
-- window) is it armed again. A count of 0 or less turns the alert off.
-- The gate's detector row is locked, so concurrent denies at one gate count
-- one after the other (each count statement sees the others' commits).
CREATE OR REPLACE FUNCTION parkgate_gate_denied(p_lot uuid, p_gate text, p_at timestamptz, p_reason text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_max    integer;
    v_window interval;
    d        gate_deny_alerts%ROWTYPE;
    v_armed  boolean;
    v_n      integer;
    v_since  timestamptz;
BEGIN
    SELECT l.denied_alert_count, l.denied_alert_window INTO v_max, v_window FROM lots l WHERE l.id = p_lot;
    IF NOT FOUND OR v_max <= 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO gate_deny_alerts (lot_id, gate_id, last_deny_at) VALUES (p_lot, p_gate, p_at)
    ON CONFLICT (lot_id, gate_id) DO NOTHING;
    SELECT * INTO d FROM gate_deny_alerts a WHERE a.lot_id = p_lot AND a.gate_id = p_gate FOR UPDATE;
    v_armed := NOT d.fired OR p_at - d.last_deny_at >= v_window;
    SELECT count(*), min(e.occurred_at) INTO v_n, v_since
      FROM gate_events e
     WHERE e.lot_id = p_lot AND e.gate_id = p_gate AND e.decision = 'deny'
       AND e.occurred_at > p_at - v_window AND e.occurred_at <= p_at;
    UPDATE gate_deny_alerts a
       SET fired = NOT v_armed OR v_n >= v_max, last_deny_at = greatest(d.last_deny_at, p_at)
     WHERE a.lot_id = p_lot AND a.gate_id = p_gate;
    IF NOT v_armed OR v_n < v_max THEN
        RETURN NULL;
    END IF;
    PERFORM parkgate_alert('gate.denied_repeatedly', jsonb_build_object(
        'lot_id', p_lot, 'gate_id', p_gate, 'count', v_n,
        'window', parkgate_go_duration(v_window), 'last_reason', p_reason,
        'since', parkgate_rfc3339(v_since)));
    RETURN v_n;
END $$;
