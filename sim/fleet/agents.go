package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/edge/mqttlink"
	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// applyLog notes when each reservation's CONFIRMED change was applied at its
// edge: the moment the agent's store committed it, after which the gate
// decides on it.
type applyLog struct {
	mu        sync.Mutex
	confirmed map[string]time.Time // reservation id → applied
}

func newApplyLog() *applyLog { return &applyLog{confirmed: map[string]time.Time{}} }

func (l *applyLog) note(changes []protocol.ReservationChange, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range changes {
		if c.Reservation.Status != protocol.StatusConfirmed {
			continue
		}
		if _, ok := l.confirmed[c.Reservation.ID]; !ok {
			l.confirmed[c.Reservation.ID] = at
		}
	}
}

func (l *applyLog) applied(id string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.confirmed[id]
	return t, ok
}

// recordingStore is the agent's bbolt store as the link sees it, noting
// each applied batch. Everything else (outbox, key memory) is the store's
// own, by embedding.
type recordingStore struct {
	*bolt.Store
	log *applyLog
}

func (s recordingStore) Apply(changes []protocol.ReservationChange) (int64, error) {
	last, err := s.Store.Apply(changes)
	if err == nil {
		s.log.note(changes, time.Now())
	}
	return last, err
}

var _ mqttlink.Store = recordingStore{}

// agent is one lot's edge, assembled as edge/cmd/parkedge's Main does it,
// with fake pins for the barriers.
type agent struct {
	lot   sim.Lot
	store *bolt.Store
	link  *mqttlink.Link
	edge  *edge.Agent
}

// agentConfig is what every agent shares.
type agentConfig struct {
	dir       string
	brokerURL string
	cloudURL  string
	keys      string // the cloud's public keys, comma-separated standard base64
	logger    *slog.Logger
	applied   *applyLog
	catchUp   time.Duration
}

func startAgent(ctx context.Context, c agentConfig, lot sim.Lot, token string) (*agent, error) {
	keys, err := protocol.ParsePublicKeys(c.keys)
	if err != nil {
		return nil, err
	}
	log := c.logger.With("lot", lot.Name)
	store, err := bolt.Open(filepath.Join(c.dir, lot.Name+".db"), &bolt.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("fleet: lot %s: %w", lot.Name, err)
	}
	a := &agent{lot: lot, store: store}
	policy := edge.DefaultPolicy()
	var gates []edge.GateConfig
	var gateIDs []string
	add := func(ids []string, dir string) error {
		for _, id := range ids {
			b, err := hw.NewBarrier(hwtest.NewPin(id+"."+hw.RoleBarrier), policy.Pulse)
			if err != nil {
				return err
			}
			gates = append(gates, edge.GateConfig{Gate: edge.Gate{ID: id, Direction: dir}, Barrier: b})
			gateIDs = append(gateIDs, id)
		}
		return nil
	}
	if err := add(lot.Entry, protocol.DirectionEntry); err != nil {
		store.Close()
		return nil, err
	}
	if err := add(lot.Exit, protocol.DirectionExit); err != nil {
		store.Close()
		return nil, err
	}
	a.edge, err = edge.NewAgent(edge.Config{LotID: lot.ID, Gates: gates, Store: store, Policy: policy,
		Logger: log, CloudKeys: keys})
	if err != nil {
		store.Close()
		return nil, err
	}
	a.link, err = mqttlink.New(mqttlink.Config{
		Brokers: []string{c.brokerURL}, LotID: lot.ID, Password: token, Gates: gateIDs, Keys: keys,
		CloudURL: c.cloudURL, Token: token, Logger: log, PublicKey: store.PublicKey(), CatchUpInterval: c.catchUp,
	}, recordingStore{Store: store, log: c.applied})
	if err != nil {
		store.Close()
		return nil, err
	}
	a.edge.SetLink(a.link)
	if err := a.link.Start(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

// enter shows plate to the lot's first entry camera, as a car with a
// booking would, and returns the agent's decision.
func (a *agent) enter(ctx context.Context, plate string) (edge.Result, error) {
	return a.edge.HandleRead(ctx, edge.PlateRead{GateID: a.lot.Entry[0], Direction: protocol.DirectionEntry,
		Plate: plate, Confidence: 0.97, CapturedAt: time.Now()})
}

func (a *agent) close() {
	_ = a.link.Close()
	_ = a.store.Close()
}
