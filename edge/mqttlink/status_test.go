package mqttlink_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// TestStatusCarriesAppliedSeq: every gate's retained status follows the
// changes the agent applies, not only the seq it had when it connected; the
// cloud's GET /v1/lots/{id}/edges answers applied_seq from it, and showed a
// synced edge as far behind (0 against the lot's 11) until it reconnected.
func TestStatusCarriesAppliedSeq(t *testing.T) {
	b := setup(t, "", nil)
	r := newReceiver(t, b.broker.URL())
	b.start(t)
	cloud := client(t, b.broker.URL(), "cloud", true, nil)
	for seq := int64(1); seq <= 3; seq++ {
		publish(t, cloud, protocol.ReservationsTopic(lot), change(b.key, seq))
	}
	b.applied.wait(t, 3, 10*time.Second)
	for _, gate := range b.cfg.Gates {
		waitFor(t, 20*time.Second, gate+" status with sync_seq 3", func() bool {
			s := r.gateStatus(gate)
			return s.State == protocol.StateOnline && s.SyncSeq == 3
		})
	}
}

func (r *receiver) gateStatus(gate string) protocol.GateStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statuses[gate]
}
