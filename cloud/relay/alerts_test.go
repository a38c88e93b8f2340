package relay

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/alerts"
	"github.com/parkgate/parkgate/internal/mqttstore"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
	"github.com/parkgate/parkgate/protocol"
)

// TestEdgeAlertsFromLastWill: an agent's connection dies without a
// DISCONNECT (the link is cut), the broker publishes its last will (whose
// at is the agent's connect time, older than its "online"), and the cloud
// raises edge.offline once; the agent comes back and edge.online follows.
// A cloud replica that subscribes afresh and gets the retained status again
// raises nothing. GET /v1/lots/{id}/edges's store read shows each state.
func TestEdgeAlertsFromLastWill(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	url := sharedBrokerURL()
	lot := f.lot()
	topic := protocol.GateStatusTopic(lot, "entry-1")

	var mu sync.Mutex
	var got []string // type of each delivered event, in order
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Type string
			Data struct {
				LotID  string `json:"lot_id"`
				GateID string `json:"gate_id"`
			}
		}
		_ = json.Unmarshal(body, &ev)
		if ev.Data.LotID == lot && ev.Data.GateID == "entry-1" {
			mu.Lock()
			got = append(got, ev.Type)
			mu.Unlock()
		}
	}))
	t.Cleanup(rcv.Close)
	if _, err := f.db.CreateWebhookEndpoint(ctx, cloud.WebhookEndpoint{URL: rcv.URL,
		Events: []string{cloud.AlertEdgeOffline, cloud.AlertEdgeOnline}, Secret: "whsec_relay"}); err != nil {
		t.Fatal(err)
	}
	dctx, stopDeliverer := context.WithCancel(ctx)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		_ = alerts.New(f.db, alerts.Options{Poll: 50 * time.Millisecond, Logger: quiet}).Run(dctx)
	}()
	t.Cleanup(func() { stopDeliverer(); <-delivered })
	alertsSoFar := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(got, ",")
	}

	startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))

	// The agent, as edge/mqttlink makes it: a will fixed at connect time,
	// "online" with its applied seq published on every connection.
	proxy, err := tcpproxy.Listen("127.0.0.1:0", strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	status := func(state string, seq int64) []byte {
		b, _ := json.Marshal(protocol.GateStatus{V: protocol.Version, LotID: lot, GateID: "entry-1", State: state, SyncSeq: seq, At: time.Now().UTC()})
		return b
	}
	will := status(protocol.StateOffline, 0)
	time.Sleep(5 * time.Millisecond) // the online's at is later than the will's, as at the edge
	opts := mqtt.NewClientOptions().AddBroker(proxy.URL()).SetClientID(uniqueID("agent")).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100*time.Millisecond).SetMaxReconnectInterval(500*time.Millisecond).
		SetKeepAlive(2*time.Second).SetProtocolVersion(4).
		SetBinaryWill(topic, will, 1, true).
		SetStore(mqttstore.Copying{Store: mqtt.NewMemoryStore()}). // paho#703, as the relay does
		SetOnConnectHandler(func(c mqtt.Client) {
			go c.Publish(topic, 1, true, status(protocol.StateOnline, 5)).WaitTimeout(5 * time.Second)
		})
	agent := mqtt.NewClient(opts)
	if tok := agent.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	t.Cleanup(func() {
		agent.Disconnect(100)
		clear := connectMQTT(t, url, uniqueID("clear"), true, nil)
		clear.Publish(topic, 1, true, []byte{}).WaitTimeout(time.Second) // no retained message left behind
	})

	gate := func() cloud.EdgeState {
		le, err := f.db.LotEdges(ctx, lot)
		if err != nil || len(le.Gates) != 1 {
			return cloud.EdgeState{}
		}
		return le.Gates[0]
	}
	eventually(t, 15*time.Second, "the gate online", func() bool { return gate().Status == protocol.StateOnline })
	if g := gate(); g.AppliedSeq != 5 || g.LastSeen.IsZero() {
		t.Errorf("online gate %+v: want applied seq 5 and a last_seen", g)
	}

	proxy.Cut() // the connection dies: no DISCONNECT, so the broker sends the will
	eventually(t, 15*time.Second, "the gate offline", func() bool { return gate().Status == protocol.StateOffline })
	eventually(t, 15*time.Second, "edge.offline delivered", func() bool { return alertsSoFar() == cloud.AlertEdgeOffline })

	proxy.Restore()
	eventually(t, 15*time.Second, "the gate back online", func() bool { return gate().Status == protocol.StateOnline })
	eventually(t, 15*time.Second, "edge.online delivered", func() bool {
		return alertsSoFar() == cloud.AlertEdgeOffline+","+cloud.AlertEdgeOnline
	})

	// Another replica subscribing now gets the retained "online" again:
	// no transition, no alert.
	again := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	eventually(t, 15*time.Second, "the retained status replayed", func() bool {
		again.mu.Lock()
		defer again.mu.Unlock()
		for _, r := range again.results {
			if r.topic == topic && r.outcome == "status" {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond) // ten deliverer polls
	if s := alertsSoFar(); s != cloud.AlertEdgeOffline+","+cloud.AlertEdgeOnline {
		t.Errorf("alerts %s, want exactly one edge.offline then one edge.online", s)
	}
}
