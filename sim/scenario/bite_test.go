package scenario_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/edge/mqttlink"
	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
	"github.com/parkgate/parkgate/sim/stack"
)

// eventually polls cond every 100ms until it holds or d passes.
func eventually(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// insertOverlap writes two CONFIRMED reservations of one spot of the first
// lot whose windows overlap, straight into Postgres, as a buggy writer
// would. It returns the database's answer.
func insertOverlap(ctx context.Context, st *stack.Stack) error {
	lot := st.Edges[0].Lot.ID
	var spot int64
	if err := st.DB.Pool.QueryRow(ctx, `SELECT id FROM spots WHERE lot_id = $1 ORDER BY id DESC LIMIT 1`, lot).Scan(&spot); err != nil {
		return fmt.Errorf("find spot: %w", err)
	}
	tx, err := st.DB.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	start := time.Now().Add(time.Hour).Truncate(time.Second)
	for i, plate := range []string{"OVL001A", "OVL002B"} {
		from := start.Add(time.Duration(i) * 30 * time.Minute)
		if _, err := tx.Exec(ctx, `
			INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
			VALUES ($1, $2, $3, $4, $5, $6, 'CONFIRMED', now(), 300, 'eur')`,
			uuid.NewString(), lot, spot, plate, from, from.Add(time.Hour)); err != nil {
			return fmt.Errorf("insert %s: %w", plate, err)
		}
	}
	return tx.Commit(ctx)
}

func breakOverlap(ctx context.Context, st *stack.Stack, _ *sim.Run) error {
	return insertOverlap(ctx, st)
}

// breakRefundTwice refunds a payment the cloud honoured, twice, at the
// Stripe stand-in, through its API as any Stripe client could.
func breakRefundTwice(ctx context.Context, st *stack.Stack, run *sim.Run) error {
	honoured := map[string]bool{}
	for _, r := range run.Reservations {
		if r.Status == protocol.StatusCompleted || r.Status == protocol.StatusConfirmed || r.Status == protocol.StatusCheckedIn {
			honoured[r.ID] = true
		}
	}
	var pi string
	for _, p := range run.Payments {
		if p.Paid() && honoured[p.ReservationID] {
			pi = p.PaymentIntentID
			break
		}
	}
	if pi == "" {
		return fmt.Errorf("no honoured payment to refund")
	}
	for i := range 2 {
		form := url.Values{"payment_intent": {pi}, "amount": {"1"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.StripeURL+"/v1/refunds", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer sk_test_parksim")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("bite-refund-%d-%s", i, pi))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("refund %d: %s", i, resp.Status)
		}
	}
	return nil
}

// breakLoseEvent deletes one gate event the edges made from the cloud's
// table, as an ingest that lost it would leave things.
func breakLoseEvent(ctx context.Context, st *stack.Stack, run *sim.Run) error {
	for _, r := range run.Reads {
		if r.EventID == "" {
			continue
		}
		tag, err := st.DB.Pool.Exec(ctx, `DELETE FROM gate_events WHERE event_id = $1`, r.EventID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
	}
	return fmt.Errorf("no gate event to lose")
}

// breakForged publishes a reservation the cloud never made, signed with a
// key of the attacker's, on the first lot's reservations topic. The real
// agent must refuse it (and its car); an agent built here that trusts the
// attacker's key — which is what an agent without verification amounts to —
// stores it, opens the gate for the attacker's car, and reports the open to
// the cloud like any agent, where the invariant must catch it.
func breakForged(ctx context.Context, st *stack.Stack, _ *sim.Run) error {
	e := st.Edges[0]
	lot := e.Lot.ID
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	const plate = "FRG001X"
	forgedID := uuid.NewString()
	forge := func(seq int64) []byte {
		c := protocol.ReservationChange{V: protocol.Version, LotID: lot, Seq: seq, Op: protocol.OpUpsert,
			Reservation: protocol.Reservation{ID: forgedID, Plate: plate, StartsAt: time.Now().Add(-time.Minute).UTC(),
				EndsAt: time.Now().Add(time.Hour).UTC(), Status: protocol.StatusConfirmed}}
		c.Sign(key)
		b, _ := protocol.Encode(c)
		return b
	}
	attacker := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(st.Broker.URL()).
		SetClientID("parksim-forger-" + forgedID[:8]).SetCleanSession(true))
	if tok := attacker.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("attacker connect: %v", tok.Error())
	}
	defer attacker.Disconnect(100)
	publish := func(seq int64) error {
		tok := attacker.Publish(protocol.ReservationsTopic(lot), 1, false, forge(seq))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return fmt.Errorf("publish forged change: %v", tok.Error())
		}
		return nil
	}

	// The real agent: the lot's next sequence number, so it is not dropped
	// as old news but refused for its signature.
	seqs, err := st.LotSeqs(ctx)
	if err != nil {
		return err
	}
	badSigs := func() float64 {
		m, _ := st.EdgeMetrics(ctx, e)
		return m["parkedge_sync_bad_signatures_total"]
	}
	before := badSigs()
	if err := publish(seqs[lot] + 1); err != nil {
		return err
	}
	if err := eventually(ctx, 10*time.Second, "the real agent refusing the forged signature", func() bool { return badSigs() > before }); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"gate_id": e.Lot.Entry[0], "plate": plate, "confidence": 0.97})
	resp, err := http.Post(e.URL+"/v1/plate-reads", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	var ans struct{ Decision, Reason string }
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if ans.Decision != protocol.DecisionDeny {
		return fmt.Errorf("the real agent let the forged car in: %+v", ans)
	}

	// The agent without verification, built here from the edge's public
	// packages: no switch in the shipped binary makes one.
	dir, err := os.MkdirTemp("", "parksim-unverified-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := bolt.Open(filepath.Join(dir, "edge.db"), nil)
	if err != nil {
		return err
	}
	defer store.Close()
	barrier, err := hw.NewBarrier(hwtest.NewPin("entry-9.barrier"), 200*time.Millisecond)
	if err != nil {
		return err
	}
	agent, err := edge.NewAgent(edge.Config{LotID: lot, Store: store, Policy: edge.DefaultPolicy(),
		Gates: []edge.GateConfig{{Gate: edge.Gate{ID: "entry-9", Direction: protocol.DirectionEntry}, Barrier: barrier}}})
	if err != nil {
		return err
	}
	link, err := mqttlink.New(mqttlink.Config{Brokers: []string{st.Broker.URL()}, LotID: lot,
		ClientID: "parksim-unverified-" + forgedID[:8], Gates: []string{"entry-9"}, Keys: []ed25519.PublicKey{pub}}, store)
	if err != nil {
		return err
	}
	// The cloud applies only events signed by a key registered for the
	// lot: this agent holds the lot's edge token, as a broken agent of the
	// lot would, and registers its store's key with it.
	kb, _ := json.Marshal(map[string]string{"public_key": protocol.EncodePublicKey(store.PublicKey())})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.CloudURL+"/v1/edge/lots/"+lot+"/keys", bytes.NewReader(kb))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.Token)
	req.Header.Set("Content-Type", "application/json")
	kresp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	kresp.Body.Close()
	if kresp.StatusCode != http.StatusCreated {
		return fmt.Errorf("registering the unverified agent's key: %s", kresp.Status)
	}
	agent.SetLink(link)
	if err := link.Start(ctx); err != nil {
		return err
	}
	defer link.Close()
	if err := eventually(ctx, 10*time.Second, "the unverified agent connecting", link.Connected); err != nil {
		return err
	}
	if err := publish(1); err != nil {
		return err
	}
	if err := eventually(ctx, 10*time.Second, "the unverified agent storing the forgery", func() bool {
		s, _ := store.LastSeq()
		return s >= 1
	}); err != nil {
		return err
	}
	res, err := agent.HandleRead(ctx, edge.PlateRead{GateID: "entry-9", Plate: plate, Confidence: 0.97})
	if err != nil {
		return err
	}
	if !res.Open() {
		return fmt.Errorf("the unverified agent did not open for the forgery: %+v", res.Decision)
	}
	return eventually(ctx, 15*time.Second, "the forged open reaching the cloud", func() bool {
		ids, _ := st.GateEventIDs(ctx)
		return ids[res.EventID]
	})
}
