package edge_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/protocol"
)

// stuckBarrier is a relay whose Open hangs until released, as a GPIO
// write on a failing board might.
type stuckBarrier struct {
	entered chan struct{}
	release chan struct{}
}

func (b *stuckBarrier) Open() error {
	close(b.entered)
	<-b.release
	return nil
}

func (b *stuckBarrier) IsOpen() bool { return false }

// TestPing: Ping answers on a healthy agent and hangs while a decision is
// stuck inside the agent's lock, which is what the systemd watchdog needs
// to see.
func TestPing(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "edge.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	barrier := &stuckBarrier{entered: make(chan struct{}), release: make(chan struct{})}
	agent, err := edge.NewAgent(edge.Config{LotID: "lot-1", Policy: policy, Store: s,
		Gates: []edge.GateConfig{{Gate: edge.Gate{ID: "entry-1", Direction: "entry"}, Barrier: barrier}},
		Now:   func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]protocol.ReservationChange{{V: 1, LotID: "lot-1", Seq: 1, Op: protocol.OpUpsert,
		Reservation: protocol.Reservation{ID: "r1", Plate: "AB123C", StartsAt: t0, EndsAt: t1, Status: protocol.StatusConfirmed}}}); err != nil {
		t.Fatal(err)
	}
	if err := agent.Ping(); err != nil {
		t.Fatalf("healthy agent: %v", err)
	}

	read := make(chan error, 1)
	go func() {
		_, err := agent.HandleRead(context.Background(), edge.PlateRead{GateID: "entry-1", Plate: "AB123C", Confidence: 0.95})
		read <- err
	}()
	<-barrier.entered
	pinged := make(chan error, 1)
	go func() { pinged <- agent.Ping() }()
	select {
	case err := <-pinged:
		t.Fatalf("Ping answered (%v) while a decision was stuck", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(barrier.release)
	if err := <-pinged; err != nil {
		t.Fatalf("after the barrier returned: %v", err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}
