package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/sim"
)

// Collect reads the sources of truth into run: the schema's reservations,
// change log and gate events, the stand-in's sessions, refunds and events,
// and each edge's sync state.
func (s *Stack) Collect(ctx context.Context, run *sim.Run) error {
	var err error
	if run.Reservations, err = s.Reservations(ctx); err != nil {
		return err
	}
	if run.Changes, err = s.Changes(ctx); err != nil {
		return err
	}
	if run.GateEvents, err = s.GateEvents(ctx); err != nil {
		return err
	}
	run.Payments, run.Refunds, run.Webhooks = s.StripeState()
	run.Edges = run.Edges[:0]
	seqs, err := s.LotSeqs(ctx)
	if err != nil {
		return err
	}
	for _, e := range s.Edges {
		st := s.EdgeState(ctx, e)
		st.LotSeq = seqs[e.Lot.ID]
		run.Edges = append(run.Edges, st)
	}
	return nil
}

// Reservations reads every reservation of the run.
func (s *Stack) Reservations(ctx context.Context) ([]sim.Reservation, error) {
	rows, err := s.DB.Query(ctx, `
		SELECT id::text, lot_id::text, spot_id, plate, starts_at, ends_at, status, hold_expires_at,
		       coalesce(checkout_session_id, ''), coalesce(payment_intent_id, ''), coalesce(refund_id, ''), created_at
		  FROM reservations ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	defer rows.Close()
	var out []sim.Reservation
	for rows.Next() {
		var r sim.Reservation
		if err := rows.Scan(&r.ID, &r.LotID, &r.SpotID, &r.Plate, &r.StartsAt, &r.EndsAt, &r.Status, &r.HoldExpiresAt,
			&r.SessionID, &r.PaymentIntentID, &r.RefundID, &r.CreatedAt); err != nil {
			return nil, fmt.Errorf("read reservations: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Changes reads every lot's change log.
func (s *Stack) Changes(ctx context.Context) ([]sim.Change, error) {
	rows, err := s.DB.Query(ctx, `SELECT lot_id::text, seq, reservation_id::text, status, created_at FROM outbox ORDER BY lot_id, seq`)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []sim.Change
	for rows.Next() {
		var c sim.Change
		if err := rows.Scan(&c.LotID, &c.Seq, &c.ReservationID, &c.Status, &c.CreatedAt); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GateEvents reads every gate event the cloud ingested.
func (s *Stack) GateEvents(ctx context.Context) ([]sim.GateEvent, error) {
	rows, err := s.DB.Query(ctx, `
		SELECT event_id, lot_id::text, gate_id, direction, kind, plate, decision, reason, coalesce(reservation_id, ''),
		       offline, occurred_at, received_at, decided_in_us
		  FROM gate_events ORDER BY occurred_at, event_id`)
	if err != nil {
		return nil, fmt.Errorf("read gate events: %w", err)
	}
	defer rows.Close()
	var out []sim.GateEvent
	for rows.Next() {
		var g sim.GateEvent
		if err := rows.Scan(&g.EventID, &g.LotID, &g.GateID, &g.Direction, &g.Kind, &g.Plate, &g.Decision, &g.Reason,
			&g.ReservationID, &g.Offline, &g.OccurredAt, &g.ReceivedAt, &g.DecidedInUs); err != nil {
			return nil, fmt.Errorf("read gate events: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// GateEventIDs returns the ids of the gate events the cloud has.
func (s *Stack) GateEventIDs(ctx context.Context) (map[string]bool, error) {
	rows, err := s.DB.Query(ctx, `SELECT event_id FROM gate_events`)
	if err != nil {
		return nil, fmt.Errorf("read gate events: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// LotSeqs returns each lot's last change-log sequence number.
func (s *Stack) LotSeqs(ctx context.Context) (map[string]int64, error) {
	rows, err := s.DB.Query(ctx, `SELECT id::text, seq FROM lots`)
	if err != nil {
		return nil, fmt.Errorf("read lots: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		out[id] = seq
	}
	return out, rows.Err()
}

// ReservationStatus reads one reservation's status ("" when absent).
func (s *Stack) ReservationStatus(ctx context.Context, id string) (string, error) {
	var st string
	err := s.DB.QueryRow(ctx, `SELECT status FROM reservations WHERE id = $1`, id).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return st, err
}

// StripeState reads the stand-in's sessions, refunds and events.
func (s *Stack) StripeState() ([]sim.StripePayment, []sim.Refund, []sim.Webhook) {
	var pays []sim.StripePayment
	for _, ss := range s.Stripe.Sessions() {
		res := ss.ClientReferenceID
		if res == "" {
			res = ss.Metadata["reservation_id"]
		}
		pays = append(pays, sim.StripePayment{SessionID: ss.ID, ReservationID: res, Status: ss.Status,
			PaymentStatus: ss.PaymentStatus, PaymentIntentID: ss.PaymentIntentID, Amount: ss.AmountTotal})
	}
	var refunds []sim.Refund
	for _, r := range s.Stripe.Refunds() {
		refunds = append(refunds, sim.Refund{ID: r.ID, PaymentIntentID: r.PaymentIntentID, Amount: r.Amount, Created: r.Created})
	}
	var hooks []sim.Webhook
	for _, e := range s.Stripe.Events() {
		hooks = append(hooks, sim.Webhook{ID: e.ID, Type: e.Type, Created: e.Created, Deliveries: e.Deliveries, Attempts: e.Attempts})
	}
	return pays, refunds, hooks
}

// EdgeState reads an edge's metrics: connected, applied seq, outbox depth.
// What it cannot read stays unknown (outbox depth -1).
func (s *Stack) EdgeState(ctx context.Context, e *Edge) sim.EdgeState {
	st := sim.EdgeState{LotID: e.Lot.ID, OutboxDepth: -1}
	m, err := s.EdgeMetrics(ctx, e)
	if err != nil {
		return st
	}
	if v, ok := m["parkedge_mqtt_connected"]; ok {
		st.Online = v == 1
	}
	if v, ok := m["parkedge_sync_applied_seq"]; ok {
		st.SyncSeq = int64(v)
	}
	if v, ok := m["parkedge_outbox_depth"]; ok {
		st.OutboxDepth = int(v)
	}
	return st
}

// EdgeMetrics reads the unlabelled samples of an edge's /metrics.
func (s *Stack) EdgeMetrics(ctx context.Context, e *Edge) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("edge metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// AppliedSeq reads the sequence number an edge has applied, from its gate
// listing.
func (s *Stack) AppliedSeq(ctx context.Context, e *Edge) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/v1/gates", nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Gates []struct {
			SyncSeq int64 `json:"sync_seq"`
		} `json:"gates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("edge gates: %w", err)
	}
	if len(out.Gates) == 0 {
		return 0, fmt.Errorf("edge gates: none")
	}
	return out.Gates[0].SyncSeq, nil
}
