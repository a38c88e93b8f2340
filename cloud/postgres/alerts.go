package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
)

// Alerts: the operators' webhook endpoints, the outbox of alert events the
// deliverers drain (events are written by parkgate_alert, in the
// transactions of what they report), and the gates' status as operators
// see it.

var (
	_ cloud.WebhookEndpoints = (*DB)(nil)
	_ cloud.AlertOutbox      = (*DB)(nil)
	_ cloud.EdgeStatusReader = (*DB)(nil)
)

// CreateWebhookEndpoint implements cloud.WebhookEndpoints.
func (db *DB) CreateWebhookEndpoint(ctx context.Context, e cloud.WebhookEndpoint) (cloud.WebhookEndpoint, error) {
	e.ID = uuid.NewString()
	err := db.Pool.QueryRow(ctx, `
		INSERT INTO webhook_endpoints (id, url, events, secret) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		e.ID, e.URL, e.Events, e.Secret).Scan(&e.CreatedAt)
	if err != nil {
		return cloud.WebhookEndpoint{}, fail("create webhook endpoint", err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return e, nil
}

// WebhookEndpoints implements cloud.WebhookEndpoints.
func (db *DB) WebhookEndpoints(ctx context.Context) ([]cloud.WebhookEndpoint, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT id::text, url, events, secret, created_at FROM webhook_endpoints ORDER BY created_at, id`)
	if err != nil {
		return nil, fail("list webhook endpoints", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.WebhookEndpoint, error) {
		var e cloud.WebhookEndpoint
		err := r.Scan(&e.ID, &e.URL, &e.Events, &e.Secret, &e.CreatedAt)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fail("list webhook endpoints", err)
	}
	return out, nil
}

// DeleteWebhookEndpoint implements cloud.WebhookEndpoints. Its pending
// deliveries go with it (ON DELETE CASCADE), so nothing more is sent to it.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	if !canonicalize(&id) {
		return cloud.Errorf(cloud.ENotFound, "webhook endpoint %q not found", id)
	}
	tag, err := db.Pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id)
	if err != nil {
		return fail("delete webhook endpoint", err)
	}
	if tag.RowsAffected() == 0 {
		return cloud.Errorf(cloud.ENotFound, "webhook endpoint %q not found", id)
	}
	return nil
}

// Alert raises an alert event of type typ with data (encoded as JSON)
// outside any other transaction, through parkgate_alert; code that writes
// the fact it reports in SQL calls parkgate_alert in that transaction
// instead. It returns the event's id, "" when no endpoint subscribes to typ.
func (db *DB) Alert(ctx context.Context, typ string, data any) (string, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("alert %s: %w", typ, err)
	}
	var id pgtype.Text
	if err := db.Pool.QueryRow(ctx, `SELECT parkgate_alert($1, $2::jsonb)`, typ, string(b)).Scan(&id); err != nil {
		return "", fail("alert "+typ, err)
	}
	return id.String, nil
}

// sqlClaimAlerts leases due deliveries by moving next_attempt_at past the
// lease; SKIP LOCKED lets replicas claim side by side without waiting on
// each other's rows.
const sqlClaimAlerts = `
WITH due AS (
    SELECT d.event_id, d.endpoint_id FROM alert_deliveries d
     WHERE d.state = 'pending' AND d.next_attempt_at <= now()
     ORDER BY d.next_attempt_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE alert_deliveries d SET next_attempt_at = now() + $2::interval
      FROM due WHERE d.event_id = due.event_id AND d.endpoint_id = due.endpoint_id
    RETURNING d.event_id, d.endpoint_id, d.attempts
)
SELECT c.event_id, ev.type, ev.created, ev.data, c.attempts,
       w.id::text, w.url, w.events, w.secret, w.created_at
  FROM claimed c
  JOIN alert_events ev ON ev.id = c.event_id
  JOIN webhook_endpoints w ON w.id = c.endpoint_id
 ORDER BY ev.created`

// ClaimAlertDeliveries implements cloud.AlertOutbox.
func (db *DB) ClaimAlertDeliveries(ctx context.Context, max int, lease time.Duration) ([]cloud.AlertDelivery, error) {
	rows, err := db.Pool.Query(ctx, sqlClaimAlerts, max, lease)
	if err != nil {
		return nil, fail("claim alert deliveries", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.AlertDelivery, error) {
		var d cloud.AlertDelivery
		var data []byte
		err := r.Scan(&d.EventID, &d.Type, &d.Created, &data, &d.Attempts,
			&d.Endpoint.ID, &d.Endpoint.URL, &d.Endpoint.Events, &d.Endpoint.Secret, &d.Endpoint.CreatedAt)
		d.Data = data
		d.Created = d.Created.UTC()
		return d, err
	})
	if err != nil {
		return nil, fail("claim alert deliveries", err)
	}
	return out, nil
}

// AlertDelivered implements cloud.AlertOutbox. A delivery already marked
// (another replica's lease ran out and both posted) keeps its first
// outcome; the lag is still the event's age.
func (db *DB) AlertDelivered(ctx context.Context, eventID, endpointID string) (time.Duration, error) {
	var lagUS int64
	err := db.Pool.QueryRow(ctx, `
		WITH done AS (
		    UPDATE alert_deliveries SET state = 'delivered', delivered_at = now(), attempts = attempts + 1,
		           last_error = NULL
		     WHERE event_id = $1 AND endpoint_id = $2 AND state = 'pending')
		SELECT (extract(epoch FROM now() - created) * 1000000)::bigint FROM alert_events WHERE id = $1`,
		eventID, endpointID).Scan(&lagUS)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // the endpoint was deleted meanwhile, and its events with it
	}
	if err != nil {
		return 0, fail("mark alert delivered", err)
	}
	return time.Duration(lagUS) * time.Microsecond, nil
}

// AlertRetry implements cloud.AlertOutbox.
func (db *DB) AlertRetry(ctx context.Context, eventID, endpointID string, next time.Time, reason string) error {
	_, err := db.Pool.Exec(ctx, `
		UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4
		 WHERE event_id = $1 AND endpoint_id = $2 AND state = 'pending'`, eventID, endpointID, next, reason)
	if err != nil {
		return fail("schedule alert retry", err)
	}
	return nil
}

// AlertFailed implements cloud.AlertOutbox.
func (db *DB) AlertFailed(ctx context.Context, eventID, endpointID, reason string) error {
	_, err := db.Pool.Exec(ctx, `
		UPDATE alert_deliveries SET state = 'failed', attempts = attempts + 1, last_error = $3
		 WHERE event_id = $1 AND endpoint_id = $2 AND state = 'pending'`, eventID, endpointID, reason)
	if err != nil {
		return fail("give up alert delivery", err)
	}
	return nil
}

// PendingAlerts implements cloud.AlertOutbox.
func (db *DB) PendingAlerts(ctx context.Context) (int64, error) {
	var n int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM alert_deliveries WHERE state = 'pending'`).Scan(&n); err != nil {
		return 0, fail("count pending alerts", err)
	}
	return n, nil
}

// PurgeAlerts implements cloud.AlertOutbox. An event is old enough when it
// was created before the cut: deliveries end within three days of it.
func (db *DB) PurgeAlerts(ctx context.Context, olderThan time.Duration) (int64, error) {
	var n int64
	err := db.Pool.QueryRow(ctx, `
		WITH old AS (
		    SELECT ev.id FROM alert_events ev
		     WHERE ev.created < now() - $1::interval
		       AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.event_id = ev.id AND d.state = 'pending')
		     LIMIT 10000),
		gone AS (DELETE FROM alert_events ev USING old WHERE ev.id = old.id RETURNING 1)
		SELECT count(*) FROM gone`, olderThan).Scan(&n)
	if err != nil {
		return 0, fail("purge alerts", err)
	}
	return n, nil
}

// LotEdges implements cloud.EdgeStatusReader. The lot's seq and its gates
// come from one snapshot.
func (db *DB) LotEdges(ctx context.Context, lotID string) (cloud.LotEdges, error) {
	if !canonicalize(&lotID) {
		return cloud.LotEdges{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	out := cloud.LotEdges{Gates: []cloud.EdgeState{}}
	rows, err := db.Pool.Query(ctx, `
		SELECT l.id::text, l.seq, g.gate_id, g.state, g.last_seen, coalesce(g.sync_seq, 0)
		  FROM lots l LEFT JOIN gate_status g ON g.lot_id = l.id
		 WHERE l.id = $1
		 ORDER BY g.gate_id`, lotID)
	if err != nil {
		return cloud.LotEdges{}, fail("lot edges", err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		found = true
		var gate, state pgtype.Text
		var seen pgtype.Timestamptz
		var applied int64
		if err := rows.Scan(&out.LotID, &out.LotSeq, &gate, &state, &seen, &applied); err != nil {
			return cloud.LotEdges{}, fail("lot edges", err)
		}
		if !gate.Valid {
			continue // a lot none of whose gates reported yet
		}
		e := cloud.EdgeState{GateID: gate.String, Status: state.String, AppliedSeq: applied}
		if seen.Valid {
			e.LastSeen = seen.Time.UTC()
		}
		out.Gates = append(out.Gates, e)
	}
	if err := rows.Err(); err != nil {
		return cloud.LotEdges{}, fail("lot edges", err)
	}
	if !found {
		return cloud.LotEdges{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return out, nil
}
