package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/internal/promtext"
	"github.com/parkgate/parkgate/protocol"
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
	if err = s.Details(ctx, run.Reservations); err != nil {
		return err
	}
	if run.Changes, err = s.Changes(ctx); err != nil {
		return err
	}
	ps, err := s.store().AllPermits(ctx)
	if err != nil {
		return err
	}
	run.Permits = run.Permits[:0]
	for _, p := range ps {
		run.Permits = append(run.Permits, sim.Permit(p))
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

// store reads the run's schema through the cloud store's audit API, so the
// simulator holds no SQL of its own.
func (s *Stack) store() *postgres.DB { return s.DB }

// Reservations reads every reservation of the run.
func (s *Stack) Reservations(ctx context.Context) ([]sim.Reservation, error) {
	rows, err := s.store().AllReservations(ctx)
	if err != nil {
		return nil, err
	}
	var out []sim.Reservation
	for _, r := range rows {
		out = append(out, sim.Reservation{ID: r.ID, LotID: r.LotID, SpotID: r.SpotID, Plate: r.Plate,
			StartsAt: r.StartsAt, EndsAt: r.EndsAt, Status: r.Status, HoldExpiresAt: r.HoldExpiresAt,
			SessionID: r.SessionID, PaymentIntentID: r.PaymentIntentID, RefundID: r.RefundID, CreatedAt: r.CreatedAt,
			ExtendsID: r.ExtendsID})
	}
	return out, nil
}

// Details adds what only the cloud's API shows of each reservation (its
// overstay and refund), read with the admin token; an extension's own row,
// which the API does not show, is left as it is.
func (s *Stack) Details(ctx context.Context, rs []sim.Reservation) error {
	for i := range rs {
		var body struct {
			Refund *struct {
				Amount int64 `json:"amount"`
			} `json:"refund"`
			Overstay *struct {
				Minutes int    `json:"minutes"`
				Amount  int64  `json:"amount"`
				Status  string `json:"status"`
				Payment *struct {
					SessionID string `json:"session_id"`
				} `json:"payment"`
			} `json:"overstay"`
		}
		st, err := s.do(ctx, http.MethodGet, s.CloudURL+"/v1/reservations/"+rs[i].ID, s.AdminToken, nil, &body)
		if st == http.StatusNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("stack: reservation details: %w", err)
		}
		if body.Refund != nil {
			rs[i].Refunded = body.Refund.Amount
		}
		if o := body.Overstay; o != nil {
			rs[i].Overstay = &sim.Overstay{Minutes: o.Minutes, Amount: o.Amount, Status: o.Status}
			if o.Payment != nil {
				rs[i].Overstay.SessionID = o.Payment.SessionID
			}
		}
	}
	return nil
}

// Changes reads every lot's change log.
func (s *Stack) Changes(ctx context.Context) ([]sim.Change, error) {
	rows, err := s.store().AllChanges(ctx)
	if err != nil {
		return nil, err
	}
	var out []sim.Change
	for _, c := range rows {
		out = append(out, sim.Change(c))
	}
	return out, nil
}

// GateEvents reads every gate event the cloud ingested.
func (s *Stack) GateEvents(ctx context.Context) ([]sim.GateEvent, error) {
	rows, err := s.store().AllGateEvents(ctx)
	if err != nil {
		return nil, err
	}
	var out []sim.GateEvent
	for _, g := range rows {
		out = append(out, sim.GateEvent(g))
	}
	return out, nil
}

// GateEventIDs returns the ids of the gate events the cloud has.
func (s *Stack) GateEventIDs(ctx context.Context) (map[string]bool, error) {
	return s.store().GateEventIDs(ctx)
}

// LotSeqs returns each lot's last change-log sequence number.
func (s *Stack) LotSeqs(ctx context.Context) (map[string]int64, error) {
	return s.store().LotSeqs(ctx)
}

// ReservationStatus reads one reservation's status ("" when absent).
func (s *Stack) ReservationStatus(ctx context.Context, id string) (cloud.Status, error) {
	return s.store().ReservationStatus(ctx, id)
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
	return promtext.Unlabelled(resp.Body)
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

// UnpricedOverstays counts the reservations whose car left clearly later
// than ends_at plus the lot's exit grace and whose overstay the API does
// not show yet, or shows owing money with no Checkout Session opened for
// it. The cloud prices an overstay in the exit event's own transaction, but
// opens its session in a worker (ChargeOverstays, every WorkerEvery): a run
// that settled between the two failed overstay_priced_once for a session
// that was a tick away.
func (s *Stack) UnpricedOverstays(ctx context.Context) int {
	events, err := s.store().AllGateEvents(ctx)
	if err != nil {
		return 0
	}
	rows, err := s.store().AllReservations(ctx)
	if err != nil {
		return 0
	}
	grace := map[string]time.Duration{}
	for _, e := range s.Edges {
		grace[e.Lot.ID] = e.Lot.ExitGrace
	}
	byID := map[string]postgres.AuditReservation{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	late := map[string]bool{}
	for _, g := range events {
		r, ok := byID[g.ReservationID]
		if ok && g.Direction == protocol.DirectionExit && g.Decision == protocol.DecisionOpen &&
			g.OccurredAt.After(r.EndsAt.Add(grace[r.LotID]+250*time.Millisecond)) {
			late[r.ID] = true
		}
	}
	n := 0
	for id := range late {
		rs := []sim.Reservation{{ID: id}}
		if err := s.Details(ctx, rs); err != nil || rs[0].Overstay == nil ||
			rs[0].Overstay.Amount > 0 && rs[0].Overstay.SessionID == "" {
			n++
		}
	}
	return n
}
