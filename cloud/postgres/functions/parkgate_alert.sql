-- parkgate_alert records an alert event for the operators' webhook
-- endpoints, in the caller's transaction, so the event exists exactly when
-- the fact it reports commits: one alert_events row (id "evt_…", p_type,
-- created now, p_data) and a pending delivery row per endpoint subscribed to
-- p_type now (an endpoint made later does not get it). It returns the
-- event's id, or NULL when no endpoint wants the type (nothing is written:
-- events nobody subscribed to would only pile up). Any code that changes
-- something an operator should hear of calls it, e.g.
--   PERFORM parkgate_alert('payment.refunded', jsonb_build_object(...));
-- Deliverers poll for due rows (no NOTIFY: it would serialize the commits
-- of the hot paths that call this, for alerts that may wait a second).
CREATE OR REPLACE FUNCTION parkgate_alert(p_type text, p_data jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id text;
BEGIN
    IF p_type NOT IN ('edge.offline', 'edge.online', 'gate.denied_repeatedly',
                      'reservation.overstayed', 'reservation.cancelled', 'payment.refunded') THEN
        RAISE EXCEPTION 'parkgate_alert: unknown event type %', p_type;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE p_type = ANY (e.events)) THEN
        RETURN NULL;
    END IF;
    v_id := 'evt_' || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO alert_events (id, type, data) VALUES (v_id, p_type, p_data);
    -- FOR KEY SHARE: an endpoint deleted meanwhile is skipped rather than
    -- failing the caller's transaction on the foreign key.
    INSERT INTO alert_deliveries (event_id, endpoint_id)
    SELECT v_id, e.id FROM webhook_endpoints e WHERE p_type = ANY (e.events) FOR KEY SHARE;
    RETURN v_id;
END $$;

-- parkgate_rfc3339 writes a time as the API does (RFC 3339, UTC, "Z",
-- the fraction without trailing zeros and none when it is zero, as Go's
-- time.RFC3339Nano), whatever the session's TimeZone, for the data of
-- alert events: a receiver comparing an alert's time with the API's sees
-- the same string.
CREATE OR REPLACE FUNCTION parkgate_rfc3339(p_at timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT rtrim(rtrim(to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z'
$$;

-- parkgate_go_duration writes an interval as Go prints a time.Duration
-- ("2m0s", "1h30m0s", "45s"), the API's form of durations.
CREATE OR REPLACE FUNCTION parkgate_go_duration(p_d interval)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_s numeric := extract(epoch FROM p_d);
    v_h bigint := floor(v_s / 3600);
    v_m bigint := floor((v_s - v_h * 3600) / 60);
    v_r numeric := v_s - v_h * 3600 - v_m * 60;
    v_rs text := trim(trailing '.' FROM trim(trailing '0' FROM to_char(v_r, 'FM999990.999999999')));
BEGIN
    IF v_h > 0 THEN
        RETURN v_h || 'h' || v_m || 'm' || v_rs || 's';
    ELSIF v_m > 0 THEN
        RETURN v_m || 'm' || v_rs || 's';
    END IF;
    RETURN v_rs || 's';
END $$;
